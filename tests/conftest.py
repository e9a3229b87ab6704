"""Set-up shared by every test module."""
import os

import pytest


def pytest_configure(config):
    """Set up a process that runs tests. pytest-xdist's controller only hands tests to its workers, so it
    skips this (importing torch, BasicSR and the package: seconds of CPU while the workers start)."""
    if getattr(config.option, 'numprocesses', None) and not hasattr(config, 'workerinput'):
        return
    import torch

    import basicsr_snn  # noqa: F401  (fixes BasicSR for today's torchvision before any test imports it)
    from basicsr_snn.archs.fused_neuron import BACKEND_ENV_VAR

    # Tests use tiny tensors, which gain nothing from threads; on a loaded machine spinning OpenMP
    # workers make each step many times slower.
    torch.set_num_threads(1)

    # End-to-end tests (and the processes they start, which inherit the environment) run spikingjelly's
    # neuron op: the fused kernel would be compiled in every process, by a C++ compiler where inductor's
    # cache is cold (a new machine, CI), which costs more than most of those tests. The fused kernel is
    # held to spikingjelly's op by the modules that use the fixture below.
    os.environ.setdefault(BACKEND_ENV_VAR, 'spikingjelly')


@pytest.fixture
def neuron_backend_as_configured(monkeypatch):
    """Lift the override above: every network runs the backend its options ask for (fused where it pays)."""
    from basicsr_snn.archs.fused_neuron import BACKEND_ENV_VAR
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """A paired gray training folder of 4 images of 24x24, shared by a module's tests."""
    from pipeline_utils import write_paired_folder
    return write_paired_folder(tmp_path_factory.mktemp('data'), count=4, size=24)


@pytest.fixture(scope='module')
def teacher_path(tmp_path_factory):
    """A checkpoint of the small test teacher (``snn_options.TEACHER``), shared by a module's tests."""
    from snn_options import write_teacher_checkpoint
    return write_teacher_checkpoint(tmp_path_factory.mktemp('teacher') / 'teacher.pth')

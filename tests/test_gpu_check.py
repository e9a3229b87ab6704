"""scripts/check_gpu.py: its one line without CUDA, and its comparison helpers on CPU tensors."""
import math
import os

import pytest
import torch

from basicsr_snn.archs.spiking_blocks import NeuronSpec
from basicsr_snn.benchmarks import gpu_check
from pipeline_utils import REPO_ROOT
from python_processes import run_python


def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    result = run_python(REPO_ROOT / 'scripts' / 'check_gpu.py', '--out', tmp_path / 'gpu.json', cwd=tmp_path,
                        env=dict(os.environ, CUDA_VISIBLE_DEVICES=''), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ['check_gpu.py: no CUDA device (torch.cuda.is_available() is False); '
                                          'nothing to check.']
    assert not (tmp_path / 'gpu.json').exists()


def test_dyadic_inputs_are_multiples_of_a_64th():
    values = gpu_check.dyadic_inputs((4, 100), seed=3)
    assert torch.equal(values * 64, torch.round(values * 64)) and values.std() > 0.3
    assert torch.equal(values, gpu_check.dyadic_inputs((4, 100), seed=3))


def test_spikes_must_be_equal():
    spikes = (torch.arange(12.) % 3 == 0).float().reshape(3, 4)
    assert gpu_check.compare_spikes(spikes, spikes.clone()) == dict(passed=True, mismatches=0, elements=12)
    flipped = spikes.clone()
    flipped[1, 2] = 1 - flipped[1, 2]
    assert gpu_check.compare_spikes(spikes, flipped) == dict(passed=False, mismatches=1, elements=12)
    assert not gpu_check.compare_spikes(spikes, spikes.reshape(4, 3))['passed']


def test_gradients_must_be_close():
    grad = torch.linspace(-1, 1, 50)
    assert gpu_check.compare_close(grad, grad * (1 + 1e-6))['passed']
    off = grad.clone()
    off[7] += 1e-3
    result = gpu_check.compare_close(grad, off)
    assert not result['passed'] and result['max_abs_diff'] == pytest.approx(1e-3, rel=1e-3)
    off[7] = math.nan
    assert gpu_check.compare_close(grad, off) == dict(passed=False, max_abs_diff=math.inf)


@pytest.mark.parametrize('neuron', ['lif', 'plif', 'if'])
def test_the_same_neuron_on_the_same_inputs_passes(neuron):
    row = gpu_check.neuron_check(neuron, gpu_check.neuron_builders()[neuron], 'cpu')
    assert row['passed'] and row['spikes']['mismatches'] == 0 and 0.05 < row['spike_rate'] < 0.95
    assert set(row['grad_params']) == ({'w'} if neuron == 'plif' else set())


def test_a_different_neuron_fails_the_check():
    row = gpu_check.neuron_check('lif', lambda: NeuronSpec(neuron='lif', backend='spikingjelly').build(), 'cpu',
                                 build_candidate=lambda: NeuronSpec(neuron='lif', backend='spikingjelly',
                                                                    v_threshold=0.3).build())
    assert not row['passed'] and row['spikes']['mismatches'] > 0


def test_the_multi_level_neuron_is_checked_where_it_exists():
    ilif = gpu_check.neuron_builders()['ilif']
    try:
        import basicsr_snn.archs.ilif_neuron  # noqa: F401
    except ImportError:
        assert ilif == 'skipped: basicsr_snn.archs.ilif_neuron.ILIFNode is not in this checkout'
    else:
        assert callable(ilif)


def tiny_student():
    from basicsr.utils.registry import ARCH_REGISTRY
    return ARCH_REGISTRY.get('SpikerIR')(in_ch=1, out_ch=1, dim=4, T=2, attention=False)


@pytest.mark.parametrize('dtype', gpu_check.DTYPES)
def test_a_few_training_steps_fall_in_every_dtype(dtype):
    row = gpu_check.training_step_check('tiny', tiny_student, 1, 'cpu', dtype, steps=4, size=16, lr=3e-3)
    assert row['passed'] and row['finite'] and len(row['losses']) == 4 and row['bad_gradient_steps'] == 0, row


def test_training_that_does_not_learn_fails():
    row = gpu_check.training_step_check('frozen', tiny_student, 1, 'cpu', 'bf16', steps=3, size=16, lr=0.)
    assert not row['passed'] and row['finite'] and not row['falling']
    with pytest.raises(ValueError, match=r"dtype must be one of \('fp32', 'bf16', 'fp16'\)"):
        gpu_check.training_step_check('x', tiny_student, 1, 'cpu', 'fp8')


def test_every_preset_and_the_teachers_are_listed():
    labels = [label for label, _, _ in gpu_check.training_networks()]
    assert labels[:4] == ['SpikerIR small', 'SpikerIR medium', 'SpikerIR base', 'Restormer (paper)']


def test_two_process_torchrun_distillation_runs_on_gloo(tmp_path):
    row = gpu_check.torchrun_distillation_check(tmp_path, backend='gloo', iterations=2)
    assert row['passed'], row.get('output_tail')
    assert row['returncode'] == 0 and row['checkpoint'] and row['logged_losses'] >= 2


def test_each_run_has_its_own_input_gradient():
    inputs = gpu_check.dyadic_inputs((4, 2, 3))
    weights = gpu_check.dyadic_inputs((4, 2, 3), seed=1)
    build = gpu_check.neuron_builders()['lif']
    _, first, _ = gpu_check._run_neuron(build(), inputs, weights, 'cpu')
    _, second, _ = gpu_check._run_neuron(build(), inputs, weights, 'cpu')
    assert first is not second and torch.equal(first, second) and not inputs.requires_grad


def test_a_neuron_with_other_gradients_and_the_same_spikes_fails_the_check():
    """Another surrogate sharpness changes the gradients only: the comparison of two runs must see it."""
    row = gpu_check.neuron_check('lif', lambda: NeuronSpec(neuron='lif', backend='spikingjelly').build(), 'cpu',
                                 build_candidate=lambda: NeuronSpec(neuron='lif', backend='spikingjelly',
                                                                    surrogate_alpha=3.0).build())
    assert row['spikes']['passed'] and not row['grad_input']['passed'] and not row['passed'], row

"""``import basicsr_snn`` leaves BasicSR's pipeline alone; basicsr-snn-run makes it run on CPU and torchrun."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from basicsr_snn.models.snn_model import build_network_from_options
from pipeline_utils import REPO_ROOT, write_options, write_paired_folder
from snn_options import training_options

PIPELINE_STATE = textwrap.dedent('''
    import basicsr_snn
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import options

    def state():
        return [getattr(options.init_dist, 'func', options.init_dist).__module__ == 'basicsr_snn._compat',
                basicsr.train.load_resume_state.__module__ == 'basicsr_snn._compat',
                BaseModel.model_to_device.__module__ == 'basicsr_snn._compat']
''')


def run_python(code, *args, cwd=None):
    result = subprocess.run([sys.executable, *args] if not code else [sys.executable, '-c', code, *args], cwd=cwd,
                            capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_patches_nothing_and_the_entry_point_fixes_apply_once():
    out = run_python(PIPELINE_STATE + textwrap.dedent('''
        from basicsr.archs.rrdbnet_arch import RRDBNet  # importing BasicSR works
        from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY
        print(state(), 'SpikerIR' in ARCH_REGISTRY, 'DistillSNNModel' in MODEL_REGISTRY)
        from basicsr_snn._compat import apply_pipeline_fixes
        apply_pipeline_fixes()
        first = (basicsr.train.load_resume_state, BaseModel.model_to_device)
        apply_pipeline_fixes()
        print(state(), first == (basicsr.train.load_resume_state, BaseModel.model_to_device))
    '''))
    before, after = out.strip().splitlines()
    assert before == '[False, False, False] True True'
    assert after == '[True, True, True] True'


def test_run_executes_a_script_as_main_with_the_registry_and_the_fixes(tmp_path):
    script = tmp_path / 'uses_registry.py'
    script.write_text(PIPELINE_STATE + textwrap.dedent('''
        import sys
        from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY
        if __name__ == '__main__':
            print(ARCH_REGISTRY.get('SpikerIR').__name__, 'FFTLoss' in LOSS_REGISTRY, sys.argv[1:], all(state()))
    '''))
    out = run_python(None, '-m', 'basicsr_snn.run', str(script), '--flag', 'x')
    threads, script_output = out.strip().splitlines()
    assert threads.startswith('torch threads: 1 (')  # every entry point states its choice
    assert script_output == "SpikerIR True ['--flag', 'x'] True"
    missing = subprocess.run([sys.executable, '-m', 'basicsr_snn.run', str(tmp_path / 'absent.py')],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and 'no such script' in missing.stderr


def test_run_trains_through_a_basicsr_checkouts_train_script(tmp_path):
    checkout = tmp_path / 'BasicSR'
    (checkout / 'basicsr').mkdir(parents=True)
    # a checkout's train.py redefines the pipeline; the runner uses the installed one instead
    (checkout / 'basicsr' / 'train.py').write_text('raise SystemExit("the checkout script itself ran")\n')
    data = write_paired_folder(tmp_path / 'data', count=2, size=16)
    options = training_options(tmp_path, data, 'via_run', total_iter=2)
    initial = tmp_path / 'initial.pth'
    torch.save({'params': build_network_from_options(options, 'network_g').state_dict()}, initial)
    options['path']['pretrain_network_g'] = str(initial)
    option_file = write_options(tmp_path / 'o.yml', options)
    run_python(None, '-m', 'basicsr_snn.run', 'basicsr/train.py', '-opt', str(option_file), cwd=checkout)
    before = torch.load(initial)['params']
    after = torch.load(checkout / 'experiments' / 'via_run' / 'models' / 'net_g_latest.pth')['params']
    assert after.keys() == before.keys()
    assert all(torch.isfinite(value).all() for value in after.values())
    # two steps from the given weights: every convolution moved
    conv_weights = [key for key in before if key.endswith('conv1.weight')]
    assert conv_weights and all(not torch.equal(after[key], before[key]) for key in conv_weights)


def test_console_script_is_declared():
    assert 'basicsr-snn-run=basicsr_snn.run:main' in (REPO_ROOT / 'setup.py').read_text()


def test_torchaudio_is_never_imported():
    """spikingjelly 2.0.0 requires torchaudio, whose newest release (2.11) is built for an older torch than
    the tested 2.14: the package, its entry points, BasicSR's pipeline and the energy analysis never load it."""
    out = run_python(textwrap.dedent('''
        import sys
        import basicsr_snn, basicsr_snn.train, basicsr_snn.test, basicsr_snn.run
        import basicsr_snn.analysis.energy, basicsr_snn.analysis.spikingjelly_estimates
        from basicsr_snn._compat import apply_pipeline_fixes
        apply_pipeline_fixes()
        import basicsr.train, basicsr.test
        print(sorted(name for name in sys.modules if name.split('.')[0] == 'torchaudio'))
    '''))
    assert out.split() == ['[]']


@pytest.mark.parametrize('dist_params, expected', [
    (None, dict(backend=None, port=None, timeout_minutes=60)),
    ({'backend': 'gloo', 'timeout_minutes': 5}, dict(backend='gloo', port=None, timeout_minutes=5)),
])
def test_collectives_wait_longer_than_nccls_ten_minutes_by_default(tmp_path, dist_params, expected):
    """Rank 0 validates alone while the other ranks wait in a collective (dist_params.timeout_minutes)."""
    from basicsr_snn._compat import _dist_params_from_options
    options = tmp_path / 'o.yml'
    options.write_text(yaml.safe_dump({'name': 'x'} if dist_params is None else {'dist_params': dist_params}))
    assert _dist_params_from_options(['train.py', '-opt', str(options)]) == expected


def test_a_bad_timeout_names_the_option(tmp_path):
    from basicsr_snn._compat import _dist_params_from_options
    options = tmp_path / 'o.yml'
    options.write_text(yaml.safe_dump({'dist_params': {'timeout_minutes': 0}}))
    with pytest.raises(ValueError, match=r'dist_params\.timeout_minutes must be a number > 0, got 0'):
        _dist_params_from_options(['-opt', str(options)])

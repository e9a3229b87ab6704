"""scripts/check_gpu.py: its one line without CUDA, and its comparison helpers on CPU tensors."""
import json
import math
import os

import pytest
import torch

from basicsr_snn.archs.spiking_blocks import NeuronSpec
from basicsr_snn.benchmarks import entry_point_checks, gpu_check
from pipeline_utils import REPO_ROOT, load_script, run_program


def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    result = run_program(REPO_ROOT / 'scripts' / 'check_gpu.py', '--out', tmp_path / 'gpu.json', cwd=tmp_path,
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


def test_every_check_of_the_script_passes_on_the_cpu_and_a_failed_one_makes_it_exit_1(tmp_path, monkeypatch):
    check_gpu = load_script('check_gpu')
    out = tmp_path / 'report.json'
    assert check_gpu.main(['--device', 'cpu', '--only', 'neurons', '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report['checks']
    assert report['passed'] and report['failed'] == 0 and len(rows) == 4 * 2 * 3  # neurons x T x dtypes
    assert {(row['T'], row['dtype']) for row in rows} == {(t, d) for t in (1, 4) for d in gpu_check.DTYPES}
    assert all(row['passed'] and row['kernel'].startswith('torch-reference') for row in rows)
    # a gradient tolerance no difference can meet: every fp32 row fails, and so does the command
    monkeypatch.setitem(gpu_check.GRAD_TOLERANCE, 'fp32', (-1.0, -1.0))
    assert check_gpu.main(['--device', 'cpu', '--only', 'neurons', '--out', str(out)]) == 1
    report = json.loads(out.read_text())
    assert not report['passed'] and report['failed'] == 8
    assert all(row['passed'] is (row['dtype'] != 'fp32') for row in report['checks'])


def test_curves_must_agree_within_the_tolerance():
    reference = {1: 0.2, 2: 0.1}
    agreeing = entry_point_checks.compare_curves(reference, {1: 0.201, 2: 0.1}, 0.01)
    assert agreeing == dict(passed=True, max_rel_diff=pytest.approx(0.005))
    assert not entry_point_checks.compare_curves(reference, {1: 0.21, 2: 0.1}, 0.01)['passed']
    assert not entry_point_checks.compare_curves(reference, {1: 0.2}, 0.01)['passed']
    assert not entry_point_checks.compare_curves(reference, {1: 0.2, 2: math.nan}, 0.01)['passed']


def test_a_run_through_the_entry_point_matches_its_cpu_run_and_not_another_seeds(tmp_path):
    reference = entry_point_checks.run(tmp_path / 'reference', 'run', 'SNNModel', 'cpu', iterations=3)
    assert reference['returncode'] == 0 and sorted(reference['losses']) == [1, 2, 3], reference['output_tail']
    row = entry_point_checks.entry_point_check(tmp_path, 'SNNModel', 'fp32', 'cpu', reference, iterations=3)
    assert row['passed'] and row['curve']['max_rel_diff'] == 0 and row['psnr'] == row['reference_psnr'] > 10, row
    other_seed = entry_point_checks.run(tmp_path / 'other', 'run', 'SNNModel', 'cpu', iterations=3, seed=7)
    row = entry_point_checks.entry_point_check(tmp_path / 'again', 'SNNModel', 'fp32', 'cpu', other_seed, iterations=3)
    assert not row['passed'] and row['curve']['max_rel_diff'] > entry_point_checks.CURVE_RTOL['fp32'], row


def test_two_process_torchrun_distillation_runs_on_gloo(tmp_path):
    row = entry_point_checks.torchrun_check(tmp_path, 'cpu', processes=2, iterations=2)
    assert row['passed'], row.get('output_tail')
    assert row['returncode'] == 0 and row['checkpoint'] and row['logged_losses'] == 2 and row['backend'] == 'gloo'


def test_a_sigterm_stops_the_run_and_auto_resume_finishes_it(tmp_path):
    row = entry_point_checks.stop_and_resume_check(tmp_path, 'cpu', iterations=60)
    assert row['passed'], row.get('output_tail')
    assert row['stopped_returncode'] == 75 and 1 <= row['stopped_at'] < 60 and row['resumed_from'] == row['stopped_at']


@pytest.mark.parametrize('dtype', gpu_check.DTYPES)
def test_every_teacher_takes_a_training_step_at_a_size_that_is_no_power_of_two(dtype):
    from basicsr.utils.registry import ARCH_REGISTRY
    small = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, inp_channels=1, out_channels=1)
    for name, extra in (('Restormer', {}), ('PromptIR', dict(prompt_dims=(8, 16, 32), prompt_sizes=(8, 4, 2))),
                        ('AdaIR', {})):
        row = gpu_check.training_step_check(name, lambda: ARCH_REGISTRY.get(name)(**small, **extra), 1, 'cpu', dtype,
                                            steps=2, lr=3e-3)
        assert row['size'] == 36 and row['finite'] and row['bad_gradient_steps'] == 0, row

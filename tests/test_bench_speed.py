"""scripts/bench_speed.py --quick runs end to end and writes complete figures."""
import json
import math

import pytest

from basicsr_snn.archs.restormer_arch import RESTORMER_PRESETS
from basicsr_snn.archs.spikerir_arch import SPIKERIR_PRESETS
from parameter_counts import restormer_params, spikerir_params
from pipeline_utils import REPO_ROOT
from test_benchmarks import run_script

BENCH_SPEED = REPO_ROOT / 'scripts' / 'bench_speed.py'

pytestmark = pytest.mark.usefixtures('neuron_backend_as_configured')  # see conftest.py


def test_bench_speed_quick_writes_every_figure(tmp_path):
    out = tmp_path / 'speed.json'
    run_script(BENCH_SPEED, '--quick', '--threads', '1', '--out', out)
    results = json.loads(out.read_text())

    presets = ('small', 'medium', 'base')
    rows = {(row['arch'], row['preset'], row['neuron'], row['T'], row['spike_levels']): row for row in results['rows']}
    assert set(rows) == {*(('SpikerIR', preset, 'lif', T, 1) for preset in presets for T in (1, 2, 4, 8)),
                         *(('SpikerIR', preset, 'ilif', 1, 4) for preset in presets),
                         *(('SpikerIRReLU', preset, 'relu', 1, 1) for preset in presets)}
    for row in results['rows']:
        assert row['train_step_s'] > 0 and row['infer_s'] > 0
        # the twin has the spiking network's layers at T = 1
        assert row['params'] == spikerir_params(1, SPIKERIR_PRESETS[row['preset']]['dim'], T=row['T']), row
    assert set(results['train_step_ratio_snn_T4_over_relu']) == set(presets)
    for preset, ratio in results['train_step_ratio_ilif_T1_D4_over_relu'].items():
        assert ratio['train_step_s'] == (rows['SpikerIR', preset, 'ilif', 1, 4]['train_step_s']
                                         / rows['SpikerIRReLU', preset, 'relu', 1, 1]['train_step_s'])
    assert set(results['train_step_ratio_ilif_T1_D4_over_relu']) == set(presets)

    steps = {row['run']: row for row in results['model_steps']}
    assert steps['scratch (SNNModel)']['teacher_params'] == 0
    for preset in ('small', 'paper'):
        assert steps[f'H-KD, Restormer {preset}']['teacher_params'] == restormer_params(1, **RESTORMER_PRESETS[preset])
    assert all(math.isfinite(row['cpu_time_over_scratch']) and row['train_step_s'] > 0 for row in steps.values())
    neurons = results['neurons']
    assert neurons['first_fused_call_s'] > 0
    assert [(row['neuron'], row['T'], row['elements']) for row in neurons['rows']] == [
        ('lif', 4, 4 << 12), ('lif', 4, 4 << 14), ('ilif', 1, 1 << 12), ('ilif', 1, 1 << 14)]
    assert all(row['spikingjelly_s'] > 0 and row['fused_s'] > 0 for row in neurons['rows'])
    assert all(row['warmup_s'] > 0 for row in results['rows'])
    assert [(row['teacher'], row['batch'], row['size']) for row in results['teachers']] == [
        ('Restormer', 2, 8), ('PromptIR', 2, 8), ('AdaIR', 2, 8)]


def test_teacher_forward_rows_at_the_authors_configurations():
    import torch

    from basicsr_snn.benchmarks.speed import measure_teachers
    rows = measure_teachers(torch.device('cpu'), batch=1, size=8, repeats=1)
    # the published sizes of the authors' color configurations
    assert [(row['teacher'], row['params']) for row in rows] == [
        ('Restormer', 26_126_644), ('PromptIR', 35_592_263), ('AdaIR', 28_784_824)]
    assert all(row['forward_s'] > 0 and row['forward_cpu_s'] > 0 for row in rows)


def test_bench_speed_load_compares_quiet_and_busy_runs(tmp_path):
    out = tmp_path / 'load.json'
    run_script(BENCH_SPEED, '--quick', '--load', '1', '--out', out)
    results = json.loads(out.read_text())
    networks = {'SpikerIR small T=4 spikingjelly', 'SpikerIR small T=4 fused', 'SpikerIRReLU small'}
    assert results['load'] == 1 and {row['load'] for row in results['rows']} == {0, 1}
    assert {row['network'] for row in results['rows']} == networks
    threads = {row['threads'] for row in results['rows']}
    assert 1 in threads and all(row['train_step_s'] > 0 for row in results['rows'])
    assert set(results['loaded_over_quiet']) == networks
    for ratios in results['loaded_over_quiet'].values():
        assert set(ratios) == {f'{count} threads' for count in threads} and all(r > 0 for r in ratios.values())
    assert set(results['snn_over_twin']) == networks - {'SpikerIRReLU small'}


def test_bench_speed_amp_times_iterations_with_and_without_mixed_precision(tmp_path):
    out = tmp_path / 'amp.json'
    run_script(BENCH_SPEED, '--quick', '--amp', 'bf16', '--threads', '1', '--out', out)
    results = json.loads(out.read_text())
    runs = ['scratch (SNNModel)', 'H-KD, Restormer small', 'H-KD, Restormer paper']
    assert results['amp'] == 'bf16'
    expected = [(run, amp) for amp in ('fp32', 'bf16') for run in runs]
    assert [(row['run'], row['amp']) for row in results['rows']] == expected
    assert all(row['train_step_s'] > 0 for row in results['rows'])
    for run, speedup in results['amp_speedup'].items():
        fp32, bf16 = (next(r['train_step_s'] for r in results['rows'] if r['run'] == run and r['amp'] == amp)
                      for amp in ('fp32', 'bf16'))
        assert speedup == fp32 / bf16
    assert list(results['amp_speedup']) == runs

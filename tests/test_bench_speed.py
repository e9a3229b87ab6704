"""scripts/bench_speed.py --quick runs end to end and writes complete figures."""
import json
import math
import subprocess
import sys

from pipeline_utils import REPO_ROOT


def test_bench_speed_quick_writes_every_figure(tmp_path):
    out = tmp_path / 'speed.json'
    subprocess.run([sys.executable, str(REPO_ROOT / 'scripts' / 'bench_speed.py'), '--quick', '--threads', '1',
                    '--out', str(out)], check=True, capture_output=True, text=True, timeout=600)
    results = json.loads(out.read_text())

    presets = ('small', 'medium', 'base')
    rows = {(row['arch'], row['preset'], row['neuron'], row['T'], row['spike_levels']): row for row in results['rows']}
    assert set(rows) == {*(('SpikerIR', preset, 'lif', T, 1) for preset in presets for T in (1, 2, 4, 8)),
                         *(('SpikerIR', preset, 'ilif', 1, 4) for preset in presets),
                         *(('SpikerIRReLU', preset, 'relu', 1, 1) for preset in presets)}
    for row in results['rows']:
        assert row['train_step_s'] > 0 and row['infer_s'] > 0 and row['params'] > 0
    assert set(results['train_step_ratio_snn_T4_over_relu']) == set(presets)
    for preset, ratio in results['train_step_ratio_ilif_T1_D4_over_relu'].items():
        assert ratio['train_step_s'] == (rows['SpikerIR', preset, 'ilif', 1, 4]['train_step_s']
                                         / rows['SpikerIRReLU', preset, 'relu', 1, 1]['train_step_s'])
    assert set(results['train_step_ratio_ilif_T1_D4_over_relu']) == set(presets)

    steps = {row['run']: row for row in results['model_steps']}
    assert steps['scratch (SNNModel)']['teacher_params'] == 0
    assert steps['H-KD, Restormer paper']['teacher_params'] == 26_124_052
    assert all(math.isfinite(row['cpu_time_over_scratch']) and row['train_step_s'] > 0 for row in steps.values())
    neurons = results['neurons']
    assert neurons['first_fused_call_s'] > 0
    assert [(row['neuron'], row['T'], row['elements']) for row in neurons['rows']] == [
        ('lif', 4, 4 << 12), ('lif', 4, 4 << 14), ('ilif', 1, 1 << 12), ('ilif', 1, 1 << 14)]
    assert all(row['spikingjelly_s'] > 0 and row['fused_s'] > 0 for row in neurons['rows'])
    assert all(row['warmup_s'] > 0 for row in results['rows'])


def test_bench_speed_load_compares_quiet_and_busy_runs(tmp_path):
    out = tmp_path / 'load.json'
    subprocess.run([sys.executable, str(REPO_ROOT / 'scripts' / 'bench_speed.py'), '--quick', '--load', '1',
                    '--out', str(out)], check=True, capture_output=True, text=True, timeout=600)
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

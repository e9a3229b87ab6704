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

    assert {(row['arch'], row['preset'], row['T']) for row in results['rows']} == {
        *(('SpikerIR', preset, T) for preset in ('small', 'medium', 'base') for T in (1, 2, 4, 8)),
        ('SpikerIRReLU', 'small', 1), ('SpikerIRReLU', 'medium', 1), ('SpikerIRReLU', 'base', 1)}
    for row in results['rows']:
        assert row['train_step_s'] > 0 and row['infer_s'] > 0 and row['params'] > 0
    assert set(results['train_step_ratio_snn_T4_over_relu']) == {'small', 'medium', 'base'}

    steps = {row['run']: row for row in results['model_steps']}
    assert steps['scratch (SNNModel)']['teacher_params'] == 0
    assert steps['H-KD, Restormer paper']['teacher_params'] == 26_124_052
    assert all(math.isfinite(row['cpu_time_over_scratch']) and row['train_step_s'] > 0 for row in steps.values())
    neurons = results['neurons']
    assert neurons['first_fused_call_s'] > 0 and [row['elements'] for row in neurons['rows']] == [4 << 12, 4 << 14]
    assert all(row['spikingjelly_s'] > 0 and row['fused_s'] > 0 for row in neurons['rows'])
    assert all(row['warmup_s'] > 0 for row in results['rows'])
    assert [(row['teacher'], row['batch'], row['size']) for row in results['teachers']] == [
        ('Restormer', 2, 16), ('PromptIR', 2, 16), ('AdaIR', 2, 16)]


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

"""The benchmark scripts end to end (--quick, tiny data) and the pieces they are built from."""
import importlib.util
import json
import math
import os
import random
import subprocess
import sys

import pytest
import torch

import basicsr_snn  # noqa: F401  (fixes BasicSR's imports before the modules below use it)
from basicsr_snn.benchmarks import (SeededBatches, compare_curves, evenly_spaced, iterations_to_reach, parse_train_log,
                                    read_experiment_scalars)
from pipeline_utils import REPO_ROOT, TRAIN_SCRIPT, run_entry_point, write_options, write_paired_folder
from snn_options import training_options, write_teacher_checkpoint

BENCH_DISTILL = REPO_ROOT / 'scripts' / 'bench_distill.py'
PLOT_TRAINING = REPO_ROOT / 'scripts' / 'plot_training.py'


def run_script(script, *args, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, str(script), *map(str, args)], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f'{script.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}'
    return result


def assert_png(path):
    assert path.is_file() and path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', f'{path} is not a PNG'


class _NumberedImages(torch.utils.data.Dataset):
    """Item i: a 2x2 crop of a random position in image i plus noise, like a training dataset."""

    def __len__(self):
        return 5

    def __getitem__(self, index):
        return {'index': index, 'offset': random.random(), 'noise': torch.randn(2)}


def test_seeded_batches_repeat_whatever_the_caller_draws():
    batches = SeededBatches(_NumberedImages(), batch_size=2, num_batches=5, seed=3)
    first = []
    for batch in batches:
        first.append(batch)
        torch.randn(100), random.random()  # a training step drawing from the global RNGs
    second = list(batches)
    assert len(first) == len(second) == 5  # two per epoch: epochs continue past the 5 images
    for one, two in zip(first, second):
        assert torch.equal(one['index'], two['index'])
        assert torch.equal(one['offset'], two['offset']) and torch.equal(one['noise'], two['noise'])
    assert not torch.equal(first[0]['noise'], first[2]['noise'])  # the second epoch draws fresh noise
    other_seed = list(SeededBatches(_NumberedImages(), batch_size=2, num_batches=5, seed=4))
    assert any(not torch.equal(a['noise'], b['noise']) for a, b in zip(first, other_seed))


def test_seeded_batches_reject_batch_larger_than_dataset():
    with pytest.raises(ValueError, match='batch size 6 exceeds the 5 training images'):
        SeededBatches(_NumberedImages(), batch_size=6, num_batches=1, seed=0)


def test_evenly_spaced_subsets():
    assert evenly_spaced(68, 17) == list(range(0, 68, 4))
    assert evenly_spaced(12, 17) == list(range(12))
    assert evenly_spaced(5, 0) == list(range(5))
    assert evenly_spaced(10, 3) == [0, 3, 7]


def test_compare_curves_speedup_gain_and_gaps():
    iterations = [100, 200, 300, 400]
    figures = compare_curves(iterations, [25.0, 26.0, 26.5, 27.0], [26.2, 27.1, 27.4, 27.6], teacher=28.0)
    assert figures['kd_iters_to_scratch_final'] == 200 and figures['scratch_iters_to_final'] == 400
    assert figures['speedup'] == pytest.approx(2.0)
    assert figures['gain_at_equal_budget'] == pytest.approx(0.6)
    assert figures['kd_minus_teacher'] == pytest.approx(-0.4)
    assert figures['scratch_minus_teacher'] == pytest.approx(-1.0)
    # a scratch curve that fell: its final level was first reached earlier
    fell = compare_curves(iterations, [25.0, 27.2, 27.1, 27.0], [26.0, 27.0, 27.1, 27.2])
    assert fell['scratch_iters_to_final'] == 200 and fell['kd_iters_to_scratch_final'] == 200
    assert fell['speedup'] == pytest.approx(1.0) and 'teacher' not in fell


def test_compare_curves_not_reached_and_bad_input():
    figures = compare_curves([1, 2], [20.0, 22.0], [19.0, 21.5])
    assert figures['kd_iters_to_scratch_final'] is None and figures['speedup'] is None
    assert figures['gain_at_equal_budget'] == pytest.approx(-0.5)
    assert iterations_to_reach([1, 2, 3], [1.0, 3.0, 2.0], 2.5) == 2
    with pytest.raises(ValueError, match='equally long'):
        compare_curves([1, 2], [20.0], [21.0, 22.0])


def test_bench_distill_quick_writes_complete_results(tmp_path):
    out = tmp_path / 'bench'
    result = run_script(BENCH_DISTILL, '--quick', '--out', out, '--threads', '1')
    assert 'gain at equal budget' in result.stdout
    results = json.loads((out / 'bench_distill.json').read_text())
    assert set(results) == {'protocol', 'teacher', 'scratch', 'kd', 'summary', 'timing'}
    protocol = results['protocol']
    assert protocol['identical_student_init'] is True and protocol['quick'] is True
    assert protocol['student_iters'] == 4 and protocol['T'] == 4 and protocol['sigma'] == 25
    val_sets = list(protocol['val_sets'])
    assert val_sets and set(results['summary']) == set(val_sets)
    for run in ('scratch', 'kd'):
        curve = results[run]['curve']
        assert curve['iters'] == [2, 4]
        for name in val_sets:
            assert all(10 < psnr < 60 for psnr in curve[name]['psnr'])
            assert all(0 < ssim <= 1 for ssim in curve[name]['ssim'])
            final = results[run]['final'][name]
            assert final['images'] == protocol['val_sets'][name]['final_images'] == 3 and 10 < final['psnr'] < 60
        assert results[run]['params'] > 0 and math.isfinite(results[run]['seconds_per_iter'])
        assert results[run]['energy']['energy_uj'] > 0 and results[run]['energy']['time_steps'] == 4
        assert all(math.isfinite(value) for value in results[run]['losses']['l_pix'])
    assert 'l_hint_dec1' in results['kd']['losses'] and results['kd']['adapter_params'] > 0
    assert results['kd']['params'] == results['scratch']['params'] < results['teacher']['params']
    assert results['teacher']['energy']['sops'] == 0 and results['teacher']['energy']['macs'] > 0
    for name, figures in results['summary'].items():
        curves, final = figures['curves'], figures['final']
        for key in ('teacher', 'scratch_final', 'kd_final', 'gain_at_equal_budget', 'kd_minus_teacher'):
            assert math.isfinite(curves[key])
        assert curves['kd_final'] == results['kd']['curve'][name]['psnr'][-1]
        assert curves['teacher'] == results['teacher']['curve_level'][name]
        assert curves['speedup'] is None or curves['speedup'] > 0
        assert final['gain'] == pytest.approx(final['kd_psnr'] - final['scratch_psnr'])
        assert final['kd_minus_teacher'] == pytest.approx(final['kd_psnr'] - results['teacher']['final'][name]['psnr'])
        assert all(0 < final[f'{run}_ssim'] <= 1 for run in ('teacher', 'scratch', 'kd'))
    assert (out / 'teacher' / 'models' / 'net_g_latest.pth').is_file()
    assert (out / 'kd' / 'models' / 'net_g_latest.pth').is_file()
    assert_png(out / 'bench_distill.png')


def load_script(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_distill_budget_flags(tmp_path, capsys):
    bench = load_script(BENCH_DISTILL)
    quick = bench.parse_args(['--quick', '--out', str(tmp_path), '--student-iters', '6'])
    assert (quick.student_iters, quick.teacher_iters, quick.batch, quick.crop) == (6, 4, 2, 32)
    full = bench.parse_args(['--out', str(tmp_path)])
    assert (full.student_iters, full.val_every, full.final_images) == (400, 50, 17)
    for bad, message in ((['--crop', '36'], '--crop must be a multiple of 8'),
                         (['--val-every', '0'], '--val-every must be >= 1'),
                         (['--hints', 'middle'], "invalid choice: 'middle'")):
        with pytest.raises(SystemExit):
            bench.parse_args(['--quick', '--out', str(tmp_path), *bad])
        assert message in capsys.readouterr().err


LOG_FIXTURE = """\
2026-01-01 10:00:00,000 INFO: Distillation weight: DistillWeightSchedule(type='constant', gamma=0.12)
2026-01-01 10:00:01,000 INFO: [distil..][epoch:  0, iter:     500, lr:(1.000e-03,1.000e-03,)] [eta: 0:01:00, time (data): 0.200 (0.001)] l_pix: 5.0000e-02 l_hint_dec1: 2.0000e-01 distill_weight: 1.2000e-01 firing_rate: 1.5000e-01 
2026-01-01 10:00:02,000 INFO: Teacher PSNR on Set12: 29.50 dB
2026-01-01 10:00:03,000 INFO: Validation Set12
\t # psnr: 27.1000\tBest: 27.1000 @ 500 iter
\t # ssim: 0.7500\tBest: 0.7500 @ 500 iter

2026-01-01 10:00:03,500 INFO: Firing rates on Set12: mean 0.1200, encoder1 0.2000, decoder1 0.0500
2026-01-01 10:00:04,000 INFO: [distil..][epoch:  3, iter:   1,000, lr:(5.000e-04,5.000e-04,)] [eta: 0:00:00, time (data): 0.200 (0.001)] l_pix: 4.0000e-02 l_hint_dec1: nan distill_weight: 1.2000e-01 
2026-01-01 10:00:05,000 INFO: Validation Set12
\t # psnr: 27.9000\tBest: 27.9000 @ 1000 iter
2026-01-01 11:00:00,000 INFO: [distil..][epoch:  3, iter:   1,000, lr:(5.000e-04,5.000e-04,)] [eta: 0:00:00, time (data): 0.200 (0.001)] l_pix: 3.5000e-02 
"""


def test_parse_train_log_fixture():
    scalars = parse_train_log(LOG_FIXTURE)
    assert scalars['losses/l_pix'] == ([500, 1000], [0.05, 0.035])  # the resumed run's entry replaces
    assert scalars['lr'] == ([500, 1000], [1e-3, 5e-4])
    assert scalars['distill_weight'] == ([500, 1000], [0.12, 0.12])
    assert scalars['firing_rate'] == ([500], [0.15])
    assert math.isnan(scalars['losses/l_hint_dec1'][1][1])
    assert scalars['metrics/Set12/psnr'] == ([500, 1000], [27.1, 27.9])
    assert scalars['metrics/Set12/ssim'] == ([500], [0.75])
    assert scalars['metrics/Set12/teacher_psnr'] == ([500], [29.5])
    assert scalars['firing_rate/Set12/mean'] == ([500], [0.12])
    assert scalars['firing_rate/Set12/decoder1'] == ([500], [0.05])
    assert not any(tag.startswith(('losses/eta', 'losses/time', 'time', 'eta')) for tag in scalars)


def test_plot_training_from_log_and_tensorboard_of_a_real_run(tmp_path):
    data = write_paired_folder(tmp_path / 'data', count=2, size=16, channels=3)
    teacher = write_teacher_checkpoint(tmp_path / 'teacher.pth')
    options = training_options(tmp_path, data, 'tiny_plot', model_type='DistillSNNModel', total_iter=4,
                               teacher_path=teacher)
    options['val']['val_freq'] = 2
    options['logger'].update(print_freq=1, use_tb_logger=True)
    run_entry_point(TRAIN_SCRIPT, write_options(tmp_path / 'train.yml', options), cwd=tmp_path)
    experiment = tmp_path / 'experiments' / 'tiny_plot'

    from_log, _ = read_experiment_scalars(experiment, 'log')
    from_tb, _ = read_experiment_scalars(experiment, 'tb')
    for scalars in (from_log, from_tb):
        assert scalars['losses/l_pix'][0] == [1, 2, 3, 4]
        assert all(value > 0 for value in scalars['losses/l_pix'][1])
        assert scalars['metrics/tiny_val/psnr'][0][:2] == [2, 4]
        assert 'metrics/tiny_val/teacher_psnr' in scalars and 'firing_rate/tiny_val/mean' in scalars
        assert scalars['firing_rate'][0] == [1, 2, 3, 4]
    for tag in ('losses/l_pix', 'losses/l_hint_dec1', 'firing_rate'):  # the log prints 4 significant digits
        assert from_log[tag][1] == pytest.approx(from_tb[tag][1], rel=1e-3)
    assert from_log['metrics/tiny_val/psnr'][1][0] == pytest.approx(from_tb['metrics/tiny_val/psnr'][1][0], abs=1e-4)

    result = run_script(PLOT_TRAINING, '--exp', experiment, '--out', tmp_path / 'log.png', '--json',
                        tmp_path / 'log.json', timeout=120)
    assert 'losses, validation PSNR, firing rate from' in result.stdout and 'train_tiny_plot_' in result.stdout
    assert_png(tmp_path / 'log.png')
    assert json.loads((tmp_path / 'log.json').read_text())['losses/l_pix'][0] == [1, 2, 3, 4]
    load_script(PLOT_TRAINING).main(['--exp', str(experiment), '--source', 'tb'])
    assert_png(experiment / 'training_curves.png')


def test_plot_training_reports_missing_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'no train_\*\.log'):
        read_experiment_scalars(tmp_path, 'log')
    with pytest.raises(FileNotFoundError, match='no tensorboard event file'):
        read_experiment_scalars(tmp_path, 'auto')
    with pytest.raises(ValueError, match='source must be one of'):
        read_experiment_scalars(tmp_path, 'csv')


def test_bench_distill_reuses_only_a_matching_scratch_run(tmp_path):
    bench = load_script(BENCH_DISTILL)
    protocol = {key: index for index, key in enumerate(bench.SCRATCH_PROTOCOL_KEYS)}
    earlier = tmp_path / 'earlier.json'
    earlier.write_text(json.dumps({'protocol': dict(protocol, hints='paper'), 'scratch': {'final': {'Set12': 1}}}))
    reused = bench.reused_scratch(earlier, dict(protocol, hints='finest'))
    assert reused == {'final': {'Set12': 1}, 'reused_from': str(earlier)}
    with pytest.raises(ValueError, match=r'different protocol \(crop, seed\)'):
        bench.reused_scratch(earlier, dict(protocol, crop=-1, seed=-1))

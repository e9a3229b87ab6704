"""The benchmark scripts end to end (--quick, tiny data) and the pieces they are built from."""
import json
import math
import os
import random
from pathlib import Path

import pytest
import torch

import basicsr_snn  # noqa: F401  (fixes BasicSR's imports before the modules below use it)
from basicsr_snn.benchmarks import (SeededBatches, compare_curves, evenly_spaced, iterations_to_reach, parse_train_log,
                                    read_experiment_scalars)
from pipeline_utils import (REPO_ROOT, TRAIN_SCRIPT, hold_lock, load_script, run_entry_point, run_program,
                            write_options, write_paired_folder)
from snn_options import training_options, write_teacher_checkpoint

from basicsr_snn.benchmarks.arms import DEFAULT_ARMS

BENCH_DISTILL = REPO_ROOT / 'scripts' / 'bench_distill.py'
PLOT_TRAINING = REPO_ROOT / 'scripts' / 'plot_training.py'


def run_script(script, *args, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    result = run_program(script, *args, cwd=Path.cwd(), env=env, timeout=timeout)
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


def test_bench_distill_quick_runs_every_arm_and_a_rerun_skips_them(tmp_path):
    out = tmp_path / 'study'
    first = run_script(BENCH_DISTILL, '--quick', '--out', out, timeout=900)  # 23 arms
    arms = [line.split('[', 1)[1].split(']')[0] for line in first.stdout.splitlines() if 'final:' in line]
    assert sorted(arms) == sorted(DEFAULT_ARMS)
    summary = json.loads((out / 'study.json').read_text())
    rows = {row['arm']: row for row in summary['rows']}
    assert set(rows) == set(DEFAULT_ARMS)
    for name, row in rows.items():
        result = json.loads((out / name / 'result.json').read_text())
        assert result['curve']['iters'] == [2, 4] and len(result['curve']['lr']) == 2
        for set_name, score in result['final'].items():
            assert score['images'] == 2 and 5 < score['psnr'] < 60 and 0 < score['ssim'] <= 1
        assert row['energy']['energy_uj'] > 0 and math.isfinite(row['wall_minutes'])
        assert (out / name / 'net_g.pth').is_file() and not (out / name / 'progress.json').exists()
        assert not (out / name / 'models').exists() and not (out / name / 'training_states').exists()
    set_name = next(iter(rows['teacher']['final']))
    hkd = rows['membrane.hkd.s0']['sets'][set_name]
    scratch = [rows[f'membrane.scratch.s{seed}']['final'][set_name]['psnr'] for seed in (0, 1)]
    assert hkd['gain_over_scratch_db'] == pytest.approx(rows['membrane.hkd.s0']['final'][set_name]['psnr'] -
                                                        sum(scratch) / 2)
    assert hkd['noise_floor_db'] == pytest.approx(abs(scratch[0] - scratch[1]) / 2)
    assert hkd['gap_to_twin_db'] == pytest.approx(rows['membrane.hkd.s0']['final'][set_name]['psnr'] -
                                                  rows['membrane.twin.s0']['final'][set_name]['psnr'])
    assert 'gap_to_twin_db' in rows['plif.scratch.s0']['sets'][set_name]  # the membrane twin serves plif
    assert 'gap_to_twin_db' in rows['membrane.scratch.s1']['sets'][set_name]  # no s1 twin: the s0 one serves
    assert rows['spike.scratch.s0']['params'] > rows['membrane.scratch.s0']['params']
    assert rows['membrane.twin.s0']['energy']['sops'] == 0 < rows['membrane.scratch.s0']['energy']['sops']
    assert_png(out / 'study.png')
    assert '| membrane.hkd.s0 |' in (out / 'study.md').read_text()

    second = run_script(BENCH_DISTILL, '--quick', '--out', out, '--arms', 'membrane.hkd.s0', 'teacher')
    assert second.stdout.count('finished earlier: skipped') == 2 and 'training' not in second.stdout
    mismatch = run_program(BENCH_DISTILL, '--quick', '--out', out, '--iters', '6', cwd=Path.cwd(), timeout=300)
    assert mismatch.returncode != 0
    assert 'another protocol' in mismatch.stderr and "'iters'" in mismatch.stderr


def test_matched_precision_arms_report_quality_beside_energy_at_their_precision(tmp_path):
    out = tmp_path / 'study'
    run_script(BENCH_DISTILL, '--quick', '--out', out, '--arms', 'ilif-t1d8-w8.twin-init.s0', 'ilif-t1d8-w4.scratch.s0')
    rows = {row['arm']: row for row in json.loads((out / 'study.json').read_text())['rows']}
    assert set(rows) == {'w8a8.twin.s0', 'ilif-t1d8-w8.twin-init.s0', 'ilif-t1d8-w4.scratch.s0'}  # the twin first
    assert [rows[arm]['precision'] for arm in sorted(rows)] == ['W4A8', 'W8A8', 'W8A8']
    twin, student = rows['w8a8.twin.s0'], rows['ilif-t1d8-w8.twin-init.s0']
    assert twin['energy']['sops'] == 0 and twin['energy']['macs'] > student['energy']['macs']
    set_name = next(iter(student['sets']))
    assert student['sets'][set_name]['gap_to_twin_db'] == pytest.approx(
        student['final'][set_name]['psnr'] - twin['final'][set_name]['psnr'])
    loaded = json.loads((out / 'ilif-t1d8-w8.twin-init.s0' / 'result.json').read_text())
    assert loaded['network']['weight_bits'] == 8 and loaded['network']['act_bits'] == 8
    header = (out / 'study.md').read_text().splitlines()[0]
    assert 'precision' in header and 'total gpu / 256²' in header and 'total neuromorphic / 256²' in header


def quick_study(out, iters=4):
    from basicsr_snn.benchmarks.study import Study, StudyProtocol
    from basicsr_snn.data.demo_data import make_demo_dataset
    demo = make_demo_dataset(out.parent / 'demo', tile_size=64, val_size=64)
    protocol = StudyProtocol(train_dir=str(demo['train_gray']), val_dirs=(str(demo['val_gray']), ), iters=iters,
                             teacher_iters=2, batch=2, crop=32, val_every=2, val_images=1, final_images=1)
    return Study(protocol, out, log=lambda message: None)


class Interrupt(Exception):
    pass


def test_an_interrupted_arm_resumes_to_the_uninterrupted_result(tmp_path):
    uninterrupted = quick_study(tmp_path / 'a')
    uninterrupted.run(['membrane.scratch.s0'])
    interrupted = quick_study(tmp_path / 'b')

    def stop_after_first_validation(message):
        if 'iter 2/4' in message:
            raise Interrupt

    interrupted.log = stop_after_first_validation
    with pytest.raises(Interrupt):
        interrupted.run(['membrane.scratch.s0'])
    arm_dir = tmp_path / 'b' / 'membrane.scratch.s0'
    # the training run's checkpoints, BasicSR's names
    assert (arm_dir / 'training_states' / '2.state').is_file() and (arm_dir / 'models' / 'net_g_2.pth').is_file()
    assert not (arm_dir / 'result.json').exists()
    assert not (arm_dir / '.lock').exists()
    messages = []
    interrupted.log = messages.append
    interrupted.run(['membrane.scratch.s0'])
    assert 'resuming at iteration 2/4' in ' '.join(messages)
    expected = torch.load(tmp_path / 'a' / 'membrane.scratch.s0' / 'net_g.pth')['params']
    resumed = torch.load(arm_dir / 'net_g.pth')['params']
    for key, value in expected.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6, msg=key)
    curves = [json.loads((root / 'membrane.scratch.s0' / 'result.json').read_text())['curve'] for root in
              (tmp_path / 'a', tmp_path / 'b')]
    assert curves[0]['iters'] == curves[1]['iters'] == [2, 4]


def test_an_arm_held_by_a_live_process_is_skipped_and_a_killed_holder_s_lock_taken_over(tmp_path):
    study = quick_study(tmp_path / 's', iters=2)
    lock = tmp_path / 's' / 'membrane.twin.s0' / '.lock'
    holder = hold_lock(lock, tmp_path)
    try:
        messages = []
        study.log = messages.append
        study.run(['membrane.twin.s0'])
        assert f'held by process {holder.pid}: skipped' in ' '.join(messages)
    finally:
        holder.kill()  # SIGKILL: its lock file stays, its OS lock does not
        holder.wait()
    assert lock.is_file()
    study.run(['membrane.twin.s0'])
    assert (tmp_path / 's' / 'membrane.twin.s0' / 'result.json').is_file() and not lock.exists()


def test_arm_names_are_checked():
    from basicsr_snn.benchmarks.arms import Arm
    assert Arm.parse('t8.twin-init.s3').twin.name == 'membrane.twin.s3'
    assert [arm.name for arm in Arm.parse('membrane.twin-teacher.s1').dependencies()] == ['membrane.twin.s1']
    assert [arm.name for arm in Arm.parse('spike.hkd.s0').dependencies()] == ['teacher']
    for bad in ('membrane.hkd', 'wide.scratch.s0', 'membrane.kd.s0', 'ilif-t3d4.scratch.s0'):
        with pytest.raises(ValueError, match=r'<design>\.<recipe>\.s<seed>'):
            Arm.parse(bad)


def test_multi_level_designs_parse_and_share_their_binary_designs_twins():
    from basicsr_snn.benchmarks.arms import Arm, student_network
    base = {'type': 'SpikerIR', 'in_ch': 1, 'out_ch': 1, 'T': 4}
    for name, (T, levels, twin) in {'ilif-t1d4': (1, 4, 'membrane'), 'ilif-t1d8': (1, 8, 'membrane'),
                                    'ilif-t2d2': (2, 2, 'membrane'), 'medium-ilif-t1d4': (1, 4, 'medium')}.items():
        arm = Arm.parse(f'{name}.twin-init.s1')
        assert (arm.design, arm.recipe, arm.seed) == (name, 'twin-init', 1)
        assert arm.twin.name == f'{twin}.twin.s1' and [a.name for a in arm.dependencies()] == [arm.twin.name]
        network = student_network(base, arm)
        assert (network['neuron'], network['T'], network['spike_levels']) == ('ilif', T, levels)
        twin_network = student_network(base, arm.twin)
        assert twin_network['type'] == 'SpikerIRReLU'  # at its default T = 1
        assert 'spike_levels' not in twin_network and 'neuron' not in twin_network
    assert student_network(base, Arm.parse('medium-ilif-t1d4.scratch.s0'))['dim'] == 14
    assert [a.name for a in Arm.parse('ilif-t1d4.hkd-std.s0').dependencies()] == ['teacher']


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
    load_script('plot_training').main(['--exp', str(experiment), '--source', 'tb'])
    assert_png(experiment / 'training_curves.png')


def test_plot_training_reports_missing_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'no train_\*\.log'):
        read_experiment_scalars(tmp_path, 'log')
    with pytest.raises(FileNotFoundError, match='no tensorboard event file'):
        read_experiment_scalars(tmp_path, 'auto')
    with pytest.raises(ValueError, match='source must be one of'):
        read_experiment_scalars(tmp_path, 'csv')

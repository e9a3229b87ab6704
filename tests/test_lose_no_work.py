"""Runs that lose no work: the loss guard, atomic checkpoints, resume fallback, one writer per experiment."""
import math
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from basicsr_snn.models.training_guard import LossGuard, TrainingDiverged
from basicsr_snn.utils import experiment_lock
from basicsr_snn.utils.checkpoint import atomic_save, newest_complete_checkpoint
from pipeline_utils import REPO_ROOT, TRAIN_SCRIPT, load_script, write_options, write_paired_folder
from python_processes import run_python
from snn_options import build_model, in_process_options, training_options, write_teacher_checkpoint


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_paired_folder(tmp_path_factory.mktemp('data'), count=4, size=24)


def snn_model(tmp_path, data_root, **train):
    return build_model(in_process_options(tmp_path, training_options(tmp_path, data_root, 'guarded', **train)))


def batch(value=None):
    lq = torch.rand(2, 3, 16, 16)
    if value is not None:
        lq[0, 0, 0, 0] = value
    return {'lq': lq, 'gt': torch.rand(2, 3, 16, 16)}


def weights(model):
    """Parameters and buffers (BN running statistics) of the student."""
    return {key: value.clone() for key, value in model.get_bare_model(model.net_g).state_dict().items()}


def test_a_non_finite_loss_never_reaches_the_optimizer_and_stops_the_run(tmp_path, data_root):
    model = snn_model(tmp_path, data_root, loss_guard={'max_skips': 2})
    model.feed_data(batch())
    model.optimize_parameters(1)
    before = weights(model)
    for iteration in (2, 3):
        model.feed_data(batch(float('nan')))
        model.optimize_parameters(iteration)
        assert math.isnan(model.log_dict['l_pix'])
    assert all(torch.equal(value, before[key]) for key, value in weights(model).items())
    model.feed_data(batch(float('nan')))
    with pytest.raises(TrainingDiverged, match=r'Training stopped at iteration 4: the loss is not finite \(l_pix: nan'
                                               r'.*not finite: \[.l_pix., .l_fft.\]\), 3 bad steps in a row '
                                               r'\(train\.loss_guard\.max_skips: 2\).*No checkpoint was saved'):
        model.optimize_parameters(4)


def test_a_good_step_resets_the_count_of_bad_ones(tmp_path, data_root):
    model = snn_model(tmp_path, data_root, loss_guard={'max_skips': 1})
    for iteration, value in enumerate([None, float('inf'), None, float('nan'), None], 1):
        model.feed_data(batch(value))
        model.optimize_parameters(iteration)
    assert model.loss_guard.skipped_in_a_row == 0


def test_a_diverged_loss_is_skipped():
    guard = LossGuard(max_skips=3, divergence_ratio=100)
    norm = torch.tensor(1.0)
    guard.accept(torch.tensor(0.05))
    assert guard.check(torch.tensor(4.0), norm) == (None, [])
    assert guard.check(torch.tensor(6.0), norm)[0] == ('the loss diverged (above 100 x the lowest loss so far, '
                                                       '0.05)')
    guard.accept(torch.tensor(0.01))
    assert 'diverged' in guard.check(torch.tensor(4.0), norm)[0]
    assert LossGuard(divergence_ratio=None).check(torch.tensor(1e30), norm) == (None, [])


def test_the_first_problem_names_the_step_and_host_numbers_pass_through():
    guard = LossGuard()
    assert guard.check(torch.tensor(float('nan')), torch.tensor(float('nan')), [15, 2])[0] == 'the loss is not finite'
    assert guard.check(torch.tensor(1.0), torch.tensor(float('inf')), [15, 2]) == (
        'the gradient norm is not finite', [15, 2])


@pytest.mark.parametrize('options, message', [
    ({'max_skips': -1}, r'train\.loss_guard\.max_skips must be an integer >= 0'),
    ({'divergence_ratio': 1}, r'train\.loss_guard\.divergence_ratio must be a number > 1 or ~'),
    ({'max_skip': 3}, r"train\.loss_guard: unknown key\(s\) \['max_skip'\]"),
])
def test_guard_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        LossGuard.from_options(options)


def test_gradient_norm_is_clipped(tmp_path, data_root):
    model = snn_model(tmp_path, data_root, grad_clip_norm=1e-3)
    model.feed_data(batch())
    model.optimize_parameters(1)
    grads = [p.grad for group in model.optimizer_g.param_groups for p in group['params'] if p.grad is not None]
    assert float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) <= 1e-3 * 1.01
    with pytest.raises(ValueError, match=r'train\.grad_clip_norm must be a number > 0'):
        snn_model(tmp_path, data_root, grad_clip_norm=0)


def _agree_worker(rank, port, results):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    # rank 1's gradient is not finite; rank 0 received a stop signal (15) and rank 1 met 2 unreadable files
    gradient_norm = torch.tensor(float('inf') if rank == 1 else 1.0)
    results[rank] = LossGuard().check(torch.tensor(1.0), gradient_norm, [15 if rank == 0 else 0, 2 * rank])
    dist.destroy_process_group()


def test_every_rank_takes_the_decision_of_the_worst_rank():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    results = mp.Manager().dict()
    # forks of the server that has imported the package (python_processes.py), not new interpreters
    mp.start_processes(_agree_worker, args=(port, results), nprocs=2, start_method='forkserver')
    assert results[0] == results[1] == ('the gradient norm is not finite', [15, 2])


def test_non_finite_weights_are_never_saved(tmp_path, data_root):
    model = snn_model(tmp_path, data_root)
    model.feed_data(batch())
    model.optimize_parameters(1)
    model.save(0, 1)
    with torch.no_grad():
        model.get_bare_model(model.net_g).head.weight[0, 0, 0, 0] = float('nan')
    with pytest.raises(TrainingDiverged, match=r'Iteration 2: SpikerIR has non-finite values in \[.head\.weight.\]; '
                                               r'not saved .*net_g_2\.pth.*The last checkpoint is .*net_g_1\.pth'):
        model.save(0, 2)
    assert not (tmp_path / 'experiments' / 'guarded' / 'models' / 'net_g_2.pth').exists()


def test_a_non_finite_validation_is_never_the_best(tmp_path, data_root):
    from snn_options import validation_loader
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'guarded'))
    model = build_model(options)
    loader = validation_loader(options)
    model.nondist_validation(loader, 1, None, False)
    best = model.best_metric_results['tiny_val']['psnr']
    assert best['iter'] == 1 and math.isfinite(best['val'])
    with torch.no_grad():
        model.get_bare_model(model.net_g).head.bias.fill_(float('nan'))
    model.nondist_validation(loader, 2, None, False)
    assert math.isnan(model.metric_results['psnr'])
    assert model.best_metric_results['tiny_val']['psnr'] == best


def test_the_issue_case_huge_learning_rate_stops_with_a_clear_error_and_no_nan_checkpoint(tmp_path, data_root):
    options = training_options(tmp_path, data_root, 'lr_1e35', total_iter=20)
    options['train']['optim_g']['lr'] = 1e35
    options['logger']['save_checkpoint_freq'] = 2
    result = run_train(tmp_path, write_options(tmp_path / 'o.yml', options))
    assert result.returncode != 0
    stop = re.search(r'TrainingDiverged: Training stopped at iteration (\d+): the loss is not finite', result.stderr)
    assert stop
    # the first step blows the weights up to finite but useless values, so every later loss is not finite:
    # steps 2 .. max_skips + 1 are skipped and the next one stops the run
    stopped_at = int(stop.group(1))
    assert stopped_at == 2 + LossGuard.from_options(None).max_skips
    models = tmp_path / 'experiments' / 'lr_1e35' / 'models'
    saved = sorted(int(p.stem.rsplit('_', 1)[1]) for p in models.glob('net_g_*.pth'))
    assert saved == list(range(2, stopped_at, 2))
    assert f'The last checkpoint is {models / f"net_g_{saved[-1]}.pth"}' in result.stderr
    for iteration in saved:
        params = torch.load(models / f'net_g_{iteration}.pth')['params']
        assert all(torch.isfinite(v).all() for v in params.values()), iteration


# atomic checkpoints and the resume fallback ---------------------------------------------------------

def write_checkpoint(folder, iteration, labels=('net_g', 'net_adapters')):
    atomic_save({'iter': iteration, 'epoch': 0}, folder / 'training_states' / f'{iteration}.state')
    for label in labels:
        atomic_save({'params': {'w': torch.ones(2)}}, folder / 'models' / f'{label}_{iteration}.pth')


@pytest.mark.parametrize('damage', ['truncate', 'empty', 'delete'])
@pytest.mark.parametrize('victim', ['training_states/2.state', 'models/net_g_2.pth', 'models/net_adapters_2.pth'])
def test_resume_falls_back_past_a_damaged_file(tmp_path, damage, victim):
    for folder in ('training_states', 'models'):
        (tmp_path / folder).mkdir()
    write_checkpoint(tmp_path, 1)
    write_checkpoint(tmp_path, 2)
    path = tmp_path / victim
    if damage == 'delete':
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2] if damage == 'truncate' else b'')
    state, skipped = newest_complete_checkpoint(tmp_path / 'training_states', tmp_path / 'models')
    assert state['iter'] == 1
    # without its state file, iteration 2 was never a checkpoint: nothing of it is skipped
    assert [p for p, _ in skipped] == ([] if damage == 'delete' and path.suffix == '.state' else [path])


def test_resume_with_no_loadable_checkpoint_names_the_files(tmp_path):
    for folder in ('training_states', 'models'):
        (tmp_path / folder).mkdir()
    write_checkpoint(tmp_path, 3, labels=('net_g', ))
    (tmp_path / 'models' / 'net_g_3.pth').write_bytes(b'')
    with pytest.raises(RuntimeError, match=r'no checkpoint in .* loads: .*net_g_3\.pth: EOFError'):
        newest_complete_checkpoint(tmp_path / 'training_states', tmp_path / 'models')
    assert newest_complete_checkpoint(tmp_path / 'absent', tmp_path / 'models') == (None, [])


def test_a_crash_while_saving_leaves_no_partial_file(tmp_path, monkeypatch):
    def failing_save(obj, path):
        open(path, 'wb').write(b'half')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', failing_save)
    with pytest.raises(OSError, match='disk full'):
        atomic_save({'w': 1}, tmp_path / 'net_g_5.pth')
    assert list(tmp_path.iterdir()) == []


def run_train(tmp_path, options_path, *args):
    return run_python(TRAIN_SCRIPT, '-opt', options_path, *args, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_auto_resume_falls_back_to_the_previous_checkpoint_and_finishes(tmp_path, data_root):
    teacher = write_teacher_checkpoint(tmp_path / 'teacher.pth')
    options = training_options(tmp_path, data_root, 'fallback', 'DistillSNNModel', total_iter=2, teacher_path=teacher)
    options['logger']['save_checkpoint_freq'] = 1
    assert run_train(tmp_path, write_options(tmp_path / 'a.yml', options)).returncode == 0
    models = tmp_path / 'experiments' / 'fallback' / 'models'
    damaged = models / 'net_adapters_2.pth'
    damaged.write_bytes(damaged.read_bytes()[:100])
    options['train']['total_iter'] = 3
    result = run_train(tmp_path, write_options(tmp_path / 'b.yml', options), '--auto_resume')
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'--auto_resume skips {damaged}' in result.stdout
    log = sorted((tmp_path / 'experiments' / 'fallback').glob('train_*.log'))[-1].read_text()
    assert re.search(r'Start training from epoch: \d+, iter: 1\n', log)
    assert (models / 'net_g_3.pth').is_file()


# one writer per experiment -----------------------------------------------------------------------------

def test_a_second_run_on_a_locked_experiment_is_refused(tmp_path, data_root):
    options_path = write_options(tmp_path / 'o.yml', training_options(tmp_path, data_root, 'locked', total_iter=1))
    experiment = tmp_path / 'experiments' / 'locked'
    experiment.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
    try:
        (experiment / '.lock').write_text(f'{holder.pid} {socket.gethostname()}\n')
        result = run_train(tmp_path, options_path)
        assert result.returncode != 0
        assert f'experiment locked is being trained by process {holder.pid}' in result.stderr
        assert [p.name for p in (tmp_path / 'experiments').iterdir()] == ['locked']  # nothing archived
    finally:
        holder.kill()
        holder.wait()
    result = run_train(tmp_path, options_path)  # the holder is gone: its lock is stale
    assert result.returncode == 0, result.stderr[-3000:]
    assert (experiment / 'models' / 'net_g_latest.pth').is_file() and not (experiment / '.lock').exists()


def test_lock_is_released_only_by_its_holder(tmp_path):
    experiment_lock.acquire(tmp_path)
    experiment_lock.check_free(tmp_path)  # our own lock does not stop us
    (tmp_path / '.lock').write_text(f'{os.getpid()} another-host\n')
    experiment_lock.release(tmp_path / '.lock')
    assert (tmp_path / '.lock').is_file()
    with pytest.raises(experiment_lock.ExperimentLocked, match='on host another-host'):
        experiment_lock.check_free(tmp_path)


# shapes checked before training -------------------------------------------------------------------------

def gray_folder(root):
    return write_paired_folder(root, count=2, size=24, channels=1)


@pytest.mark.parametrize('model_type', ['SNNModel', 'DistillSNNModel'])
def test_color_student_on_gray_data_is_named_before_training(tmp_path, model_type):
    from snn_options import TEACHER
    gray = gray_folder(tmp_path / 'gray')
    teacher = write_teacher_checkpoint(tmp_path / 'teacher.pth')
    options = in_process_options(tmp_path, training_options(tmp_path, gray, 'c', model_type, teacher_path=teacher))
    for dataset in options['datasets'].values():
        dataset['color'] = 'y'  # BasicSR's PairedImageDataset reads gray files as 1 channel with color: y
    if model_type == 'DistillSNNModel':
        options['network_t'] = dict(TEACHER)
    with pytest.raises(ValueError, match=r'datasets\.train \(datasets\.train\.color: y\) gives 1-channel images, but '
                                         r'network_g\.in_ch takes 3'):
        build_model(options)


def test_teacher_and_student_input_channels_must_agree(tmp_path, data_root):
    from snn_options import TEACHER
    gray_teacher = dict(TEACHER, inp_channels=1, out_channels=1)
    teacher = write_teacher_checkpoint(tmp_path / 'teacher.pth', network=gray_teacher)
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'ch', 'DistillSNNModel',
                                                            teacher_path=teacher))
    options['network_t'] = gray_teacher
    with pytest.raises(ValueError, match=r'datasets\.train gives 3-channel images, but network_t\.inp_channels takes 1'):
        build_model(options)
    del options['datasets']
    with pytest.raises(ValueError, match=r'differ in input channels: network_g\.in_ch takes 3, network_t\.inp_channels '
                                         r'takes 1'):
        build_model(options)


def test_a_teacher_whose_output_cannot_be_scored_against_the_student_is_named(tmp_path, data_root):
    one_out = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 1, 'scale': 1, 'num_feat': 4, 'num_block': 1,
               'num_grow_ch': 4}
    teacher = write_teacher_checkpoint(tmp_path / 'teacher.pth', network=one_out)
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'out', 'DistillSNNModel',
                                                            teacher_path=teacher))
    options['network_t'] = one_out
    options['train']['distill']['hints'] = [{'student': 'decoder1', 'teacher': 'conv_body'}]
    with pytest.raises(ValueError, match=r'the teacher PSNR of validation: the student output \(1, 3, 32, 32\) '
                                         r'\(network_g\.out_ch\) and the teacher output \(1, 1, 32, 32\) '
                                         r'\(network_t\.num_out_ch\) differ'):
        build_model(options)


def test_a_corrupt_validation_image_fails_before_training_and_is_named(tmp_path):
    data = write_paired_folder(tmp_path / 'data', count=3, size=24)
    (data / 'gt' / '001.png').write_bytes(b'not a png')
    options = in_process_options(tmp_path, training_options(tmp_path, data, 'corrupt'))
    options['datasets']['train']['dataroot_gt'] = str(write_paired_folder(tmp_path / 'good', count=3) / 'gt')
    options['datasets']['train']['dataroot_lq'] = str(tmp_path / 'good' / 'lq')
    with pytest.raises(ValueError, match=r'datasets\.val: sample 1 \(.*001\.png.*\) cannot be read'):
        build_model(options)


# smaller fixes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('text, value', [('1e3', 1000.0), ('-2', -2), ('-1e-4', -1e-4), ('2', 2), ('0.5', 0.5),
                                         ('abc', 'abc'), ('~', None), ('true', True)])
def test_force_yml_reads_numbers(text, value):
    from basicsr.utils import options

    from basicsr_snn._compat import _read_numbers
    result = _read_numbers(options._postprocess_yml_value)(text)
    assert result == value and type(result) is type(value)


def test_check_data_lists_every_bad_image_of_a_folder_and_an_lmdb(tmp_path, capsys):
    from basicsr_snn.data.lmdb_tools import make_lmdb
    folder = write_paired_folder(tmp_path / 'data', count=3) / 'gt'
    make_lmdb(folder, tmp_path / 'good.lmdb')
    (folder / '001.png').write_bytes(b'')
    (folder / '002.png').write_bytes((folder / '000.png').read_bytes()[:40])
    result = run_python(REPO_ROOT / 'scripts' / 'check_data.py', folder, cwd=tmp_path)  # the exit code
    assert result.returncode == 1
    assert re.findall(r'BAD (\S+):', result.stdout) == [str(folder / '001.png'), str(folder / '002.png')]
    assert '3 images checked, 2 do not decode' in result.stdout
    check_data = load_script('check_data')
    assert check_data.main([str(tmp_path / 'good.lmdb')]) == 0
    assert '3 images checked, 0 do not decode' in capsys.readouterr().out
    with pytest.raises(SystemExit) as missing:
        check_data.main([str(tmp_path / 'absent')])
    assert missing.value.code == 2 and 'does not exist' in capsys.readouterr().err


def test_noise_dataset_errors_name_the_dataset_option():
    from basicsr_snn.data.gaussian_noise_dataset import GaussianNoiseDataset
    with pytest.raises(ValueError, match=r'^datasets\.val \(Set12\): sigma must be'):
        GaussianNoiseDataset({'name': 'Set12', 'phase': 'val', 'dataroot_gt': '.', 'sigma': -5})


def test_ssim_leaves_images_under_its_window_out_of_the_mean(tmp_path):
    import cv2
    import numpy as np
    from snn_options import captured_log, validation_loader
    data = write_paired_folder(tmp_path / 'data', count=2, size=24)
    for sub in ('gt', 'lq'):
        cv2.imwrite(str(data / sub / 'tiny.png'), np.full((8, 8, 3), 100, np.uint8))
    options = in_process_options(tmp_path, training_options(tmp_path, data, 'ssim'))
    options['val']['metrics']['ssim'] = {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False}
    model = build_model(options)
    with captured_log() as messages:
        model.nondist_validation(validation_loader(options), 1, None, False)
    assert math.isfinite(model.metric_results['ssim']) and math.isfinite(model.metric_results['psnr'])
    assert any('ssim does not apply to 1 image(s) (tiny)' in message for message in messages)

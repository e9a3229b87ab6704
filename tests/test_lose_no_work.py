"""Runs that lose no work: the loss guard, atomic checkpoints, resume fallback, one writer per experiment."""
import contextlib
import math
import os
import re
import signal
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
from pipeline_utils import (REPO_ROOT, TRAIN_SCRIPT, hold_lock, load_script, run_main, run_program,
                            write_options, write_paired_folder)
from snn_options import build_model, captured_log, in_process_options, training_options, write_teacher_checkpoint


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
                                               r'\(train\.loss_guard\.max_skips: 2\).*No healthy checkpoint was saved'):
        model.optimize_parameters(4)


def test_a_good_step_resets_the_count_of_bad_ones(tmp_path, data_root):
    model = snn_model(tmp_path, data_root, loss_guard={'max_skips': 1})
    for iteration, value in enumerate([None, float('inf'), None, float('nan'), None], 1):
        model.feed_data(batch(value))
        model.optimize_parameters(iteration)
    assert model.loss_guard.skipped_in_a_row == 0


def test_the_loss_guard_resumes_with_its_lowest_loss(tmp_path, data_root):
    model = snn_model(tmp_path, data_root)
    model.feed_data(batch())
    model.optimize_parameters(1)
    model.save(0, 1)
    state = torch.load(tmp_path / 'experiments' / 'guarded' / 'training_states' / '1.state', weights_only=False)
    assert state['loss_guard'] == {'lowest_loss': model.loss_guard.lowest_loss} and model.loss_guard.lowest_loss < 1
    resumed = snn_model(tmp_path, data_root)
    resumed.resume_training(state)
    assert resumed.loss_guard.lowest_loss == model.loss_guard.lowest_loss


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
    # forks of a server process, not new interpreters that would import torch again
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
                                               r'not saved .*net_g_2\.pth.*The last healthy checkpoint is '
                                               r'.*net_g_1\.pth'):
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


def test_a_huge_learning_rate_leaves_no_checkpoint_of_broken_weights_and_the_advice_trains(tmp_path, data_root):
    options = training_options(tmp_path, data_root, 'lr_1e35', total_iter=20)
    options['train']['optim_g']['lr'] = 1e35
    options['logger']['save_checkpoint_freq'] = 1
    result = run_train(tmp_path, write_options(tmp_path / 'o.yml', options))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    # the first step blows the weights up to finite values whose output is not: iteration 1 is not saved, the
    # next max_skips steps are skipped (and not saved), and the one after stops the run, in one line
    max_skips = LossGuard.from_options(None).max_skips
    log = result.stdout + result.stderr
    assert 'Iteration 1: not saved, the output of net_g on the last batch is not finite' in log
    for iteration in range(2, max_skips + 2):
        assert f'Iteration {iteration}: not saved, the loss guard skipped the last {iteration - 1} step(s)' in log
    line = next(line for line in result.stderr.splitlines() if line.startswith('basicsr-snn-train: Training'))
    assert re.fullmatch(rf'basicsr-snn-train: Training stopped at iteration {max_skips + 2}: the loss is not finite '
                        r'.* Lower train\.optim_g\.lr or set train\.grad_clip_norm\. No healthy checkpoint was saved '
                        r'in this run: rerun from the beginning\.', line), line
    assert not (tmp_path / 'experiments').exists()  # nothing was saved: the run's folder is gone

    options['train']['optim_g']['lr'] = 2e-3  # the advice
    options['train']['total_iter'] = 3
    advised = run_train(tmp_path, write_options(tmp_path / 'o.yml', options), '--auto_resume')
    assert advised.returncode == 0, advised.stderr[-3000:]
    params = torch.load(tmp_path / 'experiments' / 'lr_1e35' / 'models' / 'net_g_latest.pth')['params']
    assert all(torch.isfinite(value).all() for value in params.values())


@contextlib.contextmanager
def session_after_one_step(tmp_path, data_root, name):
    """A training session of experiment ``name`` that has completed iteration 1 (nothing saved yet)."""
    from basicsr_snn.training_session import TrainingSession
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, name))
    session = TrainingSession(build_model(options), options, iterations_per_epoch=2)
    try:
        session.feed_data(batch())
        session.optimize_parameters(1)
        yield session
    finally:
        session.close()


def test_no_checkpoint_while_steps_are_skipped_and_the_stop_names_the_last_healthy_one(tmp_path, data_root):
    from basicsr_snn.training_session import TrainingStopped
    with session_after_one_step(tmp_path, data_root, 'skipping') as session:
        session.save(0, 1)
        session.feed_data(batch(float('nan')))
        session.optimize_parameters(2)
        with captured_log() as messages:
            session.save(0, 2)
        states = tmp_path / 'experiments' / 'skipping' / 'training_states'
        assert sorted(p.name for p in states.iterdir()) == ['1.state']
        healthy = f'the last healthy checkpoint is iteration 1 ({states / "1.state"}), where --auto_resume continues'
        assert messages == [f'Iteration 2: not saved, the loss guard skipped the last 1 step(s); {healthy}.']
        session.signals.received = signal.SIGTERM
        with captured_log() as messages, pytest.raises(TrainingStopped):
            session.feed_data(batch())
        assert messages[-1] == f'Stopped by SIGTERM: iteration 2 not saved; {healthy} (exit code 75).'
        assert sorted(p.name for p in states.iterdir()) == ['1.state']


def test_weights_whose_output_is_not_finite_are_not_saved(tmp_path, data_root):
    with session_after_one_step(tmp_path, data_root, 'blown_up') as session:
        assert session.unhealthy() is None
        with torch.no_grad():
            for parameter in session.model.net_g.parameters():
                parameter.mul_(1e30)  # finite, as after a step of a huge learning rate
        assert all(torch.isfinite(p).all() for p in session.model.net_g.parameters())
        assert session.unhealthy() == 'the output of net_g on the last batch is not finite'
        session.save(0, 1)
        assert not list((tmp_path / 'experiments' / 'blown_up' / 'models').iterdir())


def test_auto_resume_refuses_a_checkpoint_whose_output_is_not_finite_in_one_line(tmp_path, data_root):
    options = training_options(tmp_path, data_root, 'old_broken', total_iter=2)
    assert run_train(tmp_path, write_options(tmp_path / 'a.yml', options)).returncode == 0
    experiment = tmp_path / 'experiments' / 'old_broken'
    weights = experiment / 'models' / 'net_g_2.pth'
    checkpoint = torch.load(weights)
    # finite weights blown up, as a version without the health check saved them after a huge learning rate
    torch.save({key: {name: value * 1e30 if value.is_floating_point() else value for name, value in params.items()}
                for key, params in checkpoint.items()}, weights)
    options['train']['total_iter'] = 3
    result = run_train(tmp_path, write_options(tmp_path / 'b.yml', options), '--auto_resume')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith('basicsr-snn-train: ')][0] == (
        f'basicsr-snn-train: the checkpoint of iteration 2 ({experiment / "training_states" / "2.state"}) is broken: '
        'the output of its net_g on the first batch is not finite (it was saved without a health check); move its '
        'files away to resume from an earlier checkpoint, or start again without --auto_resume')
    assert not (experiment / 'models' / 'net_g_3.pth').exists()


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


def test_resume_takes_iteration_10_over_9_and_falls_back_to_9(tmp_path):
    """Numeric order across a change in the number of digits (as text, '9' sorts after '10')."""
    for folder in ('training_states', 'models'):
        (tmp_path / folder).mkdir()
    for iteration in (8, 9, 10):
        write_checkpoint(tmp_path, iteration)
    state, skipped = newest_complete_checkpoint(tmp_path / 'training_states', tmp_path / 'models')
    assert state['iter'] == 10 and skipped == []
    damaged = tmp_path / 'models' / 'net_g_10.pth'
    damaged.write_bytes(damaged.read_bytes()[:50])
    state, skipped = newest_complete_checkpoint(tmp_path / 'training_states', tmp_path / 'models')
    assert state['iter'] == 9 and [path for path, _ in skipped] == [damaged]


def test_a_checkpoint_write_reaches_the_disk_before_its_name_and_its_name_after(tmp_path, monkeypatch):
    """The file is fsynced before the rename, the folder after it: a power loss leaves the old file or the new
    one, whole."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        calls.append(('fsync', os.readlink(f'/proc/self/fd/{descriptor}')))
        real_fsync(descriptor)

    def replace(source, target):
        calls.append(('replace', str(source), str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'replace', replace)
    target = tmp_path / 'net_g_5.pth'
    atomic_save({'w': torch.ones(2)}, target)
    temporary = str(tmp_path / f'.net_g_5.pth.{os.getpid()}.tmp')
    assert calls == [('fsync', temporary), ('replace', temporary, str(target)), ('fsync', str(tmp_path))]
    assert torch.equal(torch.load(target)['w'], torch.ones(2))


def test_resume_removes_the_temporary_files_of_a_killed_writer(tmp_path, data_root):
    options = training_options(tmp_path, data_root, 'leftovers', total_iter=1)
    options['logger']['save_checkpoint_freq'] = 1
    assert run_train(tmp_path, write_options(tmp_path / 'a.yml', options)).returncode == 0
    experiment = tmp_path / 'experiments' / 'leftovers'
    # what a writer killed mid-save leaves (its pid in the name), and files that are not such leftovers
    left = [experiment / 'models' / '.net_g_2.pth.4242.tmp', experiment / 'training_states' / '.2.state.4242.tmp']
    kept = [experiment / 'models' / 'notes.tmp', experiment / '.editor.tmp']
    for path in left + kept:
        path.write_bytes(b'partial')
    options['train']['total_iter'] = 2
    result = run_train(tmp_path, write_options(tmp_path / 'b.yml', options), '--auto_resume')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Removed 2 temporary file(s) of a checkpoint writer that was killed: ' in result.stdout
    assert not any(path.exists() for path in left) and all(path.exists() for path in kept)
    assert (experiment / 'models' / 'net_g_2.pth').is_file()


def test_resume_with_no_loadable_checkpoint_names_the_files(tmp_path):
    for folder in ('training_states', 'models'):
        (tmp_path / folder).mkdir()
    write_checkpoint(tmp_path, 3, labels=('net_g', ))
    (tmp_path / 'models' / 'net_g_3.pth').write_bytes(b'')
    # the error's name after the file is torch's (EOFError with torch 2.14), not asserted
    with pytest.raises(RuntimeError, match=r'no checkpoint in .* loads: .*net_g_3\.pth: \w+'):
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
    return run_main(TRAIN_SCRIPT, '-opt', options_path, *args, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS='1'))


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

def test_a_second_run_on_a_locked_experiment_is_one_line_and_a_killed_holder_leaves_no_lock(tmp_path, data_root):
    options_path = write_options(tmp_path / 'o.yml', training_options(tmp_path, data_root, 'locked', total_iter=1))
    experiment = tmp_path / 'experiments' / 'locked'
    holder = hold_lock(experiment / '.lock', tmp_path)
    try:
        result = run_train(tmp_path, options_path)
        assert result.returncode == 1 and 'Traceback' not in result.stderr
        assert result.stderr.splitlines()[0] == (
            f'basicsr-snn-train: experiment locked is being trained by process {holder.pid} on '
            f'{socket.gethostname()} ({experiment / ".lock"}); stop it first (kill {holder.pid}: under torchrun, every '
            'worker) or choose another name')
        assert [p.name for p in (tmp_path / 'experiments').iterdir()] == ['locked']  # nothing archived
    finally:
        holder.kill()  # SIGKILL: the holder cannot release; the operating system does
        holder.wait()
    assert (experiment / '.lock').read_text().split()[0] == str(holder.pid)  # the file stays, not the lock
    result = run_train(tmp_path, options_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (experiment / 'models' / 'net_g_latest.pth').is_file() and not (experiment / '.lock').exists()


def test_a_lock_file_naming_a_live_process_that_does_not_hold_it_blocks_nothing(tmp_path):
    unrelated = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
    try:
        (tmp_path / '.lock').write_text(f'{unrelated.pid} {socket.gethostname()}\n')
        experiment_lock.acquire(tmp_path)
        assert (tmp_path / '.lock').read_text() == f'{os.getpid()} {socket.gethostname()}\n'
        experiment_lock.check_free(tmp_path)  # our own lock does not stop us
        experiment_lock.release(tmp_path / '.lock')
        assert not (tmp_path / '.lock').exists()
    finally:
        unrelated.kill()
        unrelated.wait()


def test_lock_is_released_only_by_its_holder(tmp_path):
    experiment = tmp_path / 'experiment'
    holder = hold_lock(experiment / '.lock', tmp_path)
    try:
        experiment_lock.release(experiment / '.lock')  # not ours: nothing happens
        assert (experiment / '.lock').is_file()
        with pytest.raises(experiment_lock.ExperimentLocked, match=f'by process {holder.pid} on '):
            experiment_lock.acquire(experiment)
        assert experiment_lock.take(experiment / '.lock') == (holder.pid, socket.gethostname())
    finally:
        holder.kill()
        holder.wait()
    experiment_lock.acquire(experiment)
    experiment_lock.release(experiment / '.lock')
    assert not (experiment / '.lock').exists()


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
                                         ('abc', 'abc'), ('~', None), ('none', None), ('true', True)])
def test_force_yml_reads_numbers(text, value):
    from basicsr_snn.pipeline import _forced_values
    [(keys, result)] = _forced_values([f'train:optim_g:lr={text}'])
    assert keys == ['train', 'optim_g', 'lr'] and result == value and type(result) is type(value)


def test_check_data_lists_every_bad_image_of_a_folder_and_an_lmdb(tmp_path, capsys):
    from basicsr_snn.data.lmdb_tools import make_lmdb
    folder = write_paired_folder(tmp_path / 'data', count=3) / 'gt'
    make_lmdb(folder, tmp_path / 'good.lmdb')
    (folder / '001.png').write_bytes(b'')
    (folder / '002.png').write_bytes((folder / '000.png').read_bytes()[:40])
    result = run_program(REPO_ROOT / 'scripts' / 'check_data.py', folder, cwd=tmp_path)  # the exit code
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

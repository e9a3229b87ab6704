"""A run stopped and resumed, however often, ends as the uninterrupted run; a state saved one schedule step
ahead (by an earlier version) or with another learning rate is corrected on resume, in one log line."""
import math
import re
import subprocess

import pytest
import torch

from basicsr_snn.training_session import STOPPED_EXIT_CODE
from pipeline_utils import (SIGNALLING_TRAIN_SCRIPT, TRAIN_SCRIPT, read_train_log, run_main, signalling_model,
                            write_options, write_paired_folder)
from snn_options import training_options
from test_preemption import ENV, TORCHRUN

TOTAL_ITER = 8
ETA_MIN = 1e-5


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """The data, the signalling script and the weights of the uninterrupted run, shared by the tests."""
    root = tmp_path_factory.mktemp('exact_resume')
    data = write_paired_folder(root / 'data', size=16, channels=3)
    script = root / 'train_signalled.py'
    script.write_text(SIGNALLING_TRAIN_SCRIPT)  # for torchrun
    whole = train(root, options(root, data, 'whole'))
    assert whole.returncode == 0, whole.stderr[-3000:]
    return root, data, script


def options(root, data, name, total_iter=TOTAL_ITER, lr=2e-3, save_freq=1000):
    """A tiny SNNModel run with EMA, without validation nor augmentation (the data order is its only
    randomness), on a cosine schedule that ends at TOTAL_ITER as every shipped option file's does: one
    schedule step too many fails at the last iteration."""
    opt = training_options(root, data, name, total_iter=total_iter)
    del opt['datasets']['val'], opt['val']
    opt['train'].update(ema_decay=0.9)
    opt['train']['optim_g']['lr'] = lr
    opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [TOTAL_ITER], 'restart_weights': [1],
                                 'eta_min': ETA_MIN}
    opt['logger']['save_checkpoint_freq'] = save_freq
    return write_options(root / f'{name}_{total_iter}_{lr}.yml', opt)


def train(root, options_path, *args, stop_signal='SIGTERM', after=0):
    """basicsr-snn-train in this process, stopped by ``stop_signal`` after the step of iteration ``after`` (0: never)."""
    return run_main(TRAIN_SCRIPT, '-opt', options_path, *args, cwd=root, env=ENV,
                    build_model=signalling_model(stop_signal, after))


def latest_weights(root, name):
    """The final weights and their EMA."""
    saved = torch.load(root / 'experiments' / name / 'models' / 'net_g_latest.pth')
    return {f'{key}.{tensor}': value for key in ('params', 'params_ema') for tensor, value in saved[key].items()}


def assert_bitwise_equal(first, second):
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f'{key}: max difference {(first[key] - second[key]).abs().max()}'


def stopped_at(output, signal_name):
    match = re.search(rf'Stopped by {signal_name}: checkpoint of iteration (\d+):', output)
    assert match, output[-4000:]
    return int(match[1])


@pytest.mark.parametrize('first, second', [(('SIGTERM', 3), ('SIGTERM', TOTAL_ITER - 1)),
                                           (('SIGINT', 2), ('SIGUSR1', 5))], ids=['sigterm-twice', 'sigint-sigusr1'])
def test_stopped_twice_and_resumed_equals_the_uninterrupted_run(workspace, first, second):
    root, data, script = workspace
    name = f'stopped_{first[0]}_{second[0]}'
    opt = options(root, data, name)
    for signal_name, after, resume in ((*first, ()), (*second, ('--auto_resume', ))):
        run = train(root, opt, *resume, stop_signal=signal_name, after=after)
        assert run.returncode == STOPPED_EXIT_CODE, run.stderr[-3000:]
        assert stopped_at(run.stderr, signal_name) == after
        state = torch.load(root / 'experiments' / name / 'training_states' / f'{after}.state', weights_only=False)
        assert [s['last_epoch'] for s in state['schedulers']] == [after - 1]
    finished = train(root, opt, '--auto_resume')
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert 'Resume: ' not in read_train_log(root / 'experiments' / name)  # nothing needed correcting
    assert_bitwise_equal(latest_weights(root, 'whole'), latest_weights(root, name))


def step_schedule_ahead(state_path, steps, lr):
    """Rewrite a training state as basicsr-snn before this fix saved it at ``steps`` stop signals: its
    scheduler (and the optimizer's learning rate) ``steps`` steps ahead of its iteration."""
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR
    state = torch.load(state_path, weights_only=False)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    scheduler = CosineAnnealingRestartLR(optimizer, periods=[TOTAL_ITER], restart_weights=[1], eta_min=ETA_MIN)
    scheduler.load_state_dict(state['schedulers'][0])
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    state['schedulers'][0] = scheduler.state_dict()
    for group in state['optimizers'][0]['param_groups']:
        group['lr'] = optimizer.param_groups[0]['lr']
    torch.save(state, state_path)


@pytest.mark.parametrize('saved_at, steps_ahead', [(3, 1), (TOTAL_ITER - 1, 2)])
def test_a_state_saved_ahead_of_its_iteration_is_corrected_on_resume(workspace, saved_at, steps_ahead):
    root, data, _ = workspace
    name = f'ahead_{saved_at}'
    first = train(root, options(root, data, name, total_iter=saved_at, save_freq=saved_at))
    assert first.returncode == 0, first.stderr[-3000:]
    step_schedule_ahead(root / 'experiments' / name / 'training_states' / f'{saved_at}.state', steps_ahead, 2e-3)
    resumed = train(root, options(root, data, name), '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    corrected = re.findall(r'Resume: (.*)', read_train_log(root / 'experiments' / name))
    assert corrected == [f'the learning-rate schedule of the checkpoint of iteration {saved_at} is {steps_ahead} '
                         'step(s) off (saved at a stop signal by an earlier basicsr-snn); corrected to iteration '
                         f'{saved_at}.']
    assert_bitwise_equal(latest_weights(root, 'whole'), latest_weights(root, name))


def test_a_resumed_run_uses_the_learning_rate_of_its_options(workspace):
    root, data, _ = workspace
    first = train(root, options(root, data, 'lower_lr', total_iter=3, save_freq=3))
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = train(root, options(root, data, 'lower_lr', lr=5e-4, save_freq=TOTAL_ITER), '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lines = re.findall(r'Resume: (.*)', read_train_log(root / 'experiments' / 'lower_lr'))
    assert lines == ['train.optim_g.lr is 0.0005 in the options and 0.002 in the checkpoint of iteration 3: the '
                     "resumed run uses the options' 0.0005, on its schedule at iteration 3."]
    state = torch.load(root / 'experiments' / 'lower_lr' / 'training_states' / f'{TOTAL_ITER}.state',
                       weights_only=False)
    group = state['optimizers'][0]['param_groups'][0]
    cosine = ETA_MIN + (5e-4 - ETA_MIN) * (1 + math.cos(math.pi * (TOTAL_ITER - 1) / TOTAL_ITER)) / 2
    assert group['initial_lr'] == 5e-4 and group['lr'] == pytest.approx(cosine, rel=1e-12)


def test_torchrun_stopped_twice_and_resumed_equals_its_uninterrupted_run(workspace):
    root, data, script = workspace

    def torchrun(name, *args, after=0):
        env = dict(ENV, STOP_SIGNAL='SIGTERM', SIGNAL_AFTER_ITER=str(after))
        return subprocess.run([*TORCHRUN, str(script), '-opt', str(options(root, data, name)), *args], cwd=root,
                              env=env, capture_output=True, text=True, timeout=600)

    whole = torchrun('whole_ddp')
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]
    # the last stop one iteration before the end: the case a schedule saved ahead crashed on
    for after, resume in ((3, ()), (TOTAL_ITER - 1, ('--auto_resume', ))):
        stopped = torchrun('stopped_ddp', *resume, after=after)
        output = stopped.stdout + stopped.stderr
        assert re.search(rf'exitcode\s*: {STOPPED_EXIT_CODE}', output), output[-4000:]
        assert stopped_at(output, 'SIGTERM') == after
    finished = torchrun('stopped_ddp', '--auto_resume')
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert_bitwise_equal(latest_weights(root, 'whole_ddp'), latest_weights(root, 'stopped_ddp'))


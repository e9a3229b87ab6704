"""Runs that lose no work to a stop signal, a crash, an unreadable training file or a full disk."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_snn.cli import STOPPED_EXIT_CODE, describe_error, help_text, user_errors_as_one_line
from basicsr_snn.data.unreadable_samples import UNREADABLE_KEY, SkipUnreadableSamples, TooManyBadSamples
from basicsr_snn.training_session import TrainingSession, TrainingStopped
from basicsr_snn.utils.checkpoint import CheckpointWriteError, atomic_write_text
from pipeline_utils import TRAIN_SCRIPT, read_train_log, run_main, write_options, write_paired_folder
from snn_options import build_model, captured_log, in_process_options, training_options
from test_pipeline import sr_model_options

ENV = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']


def deterministic_options(data, name, total_iter, save_freq=1000):
    """SRModel on whole-image crops without flips (the data order is the only randomness of training) and
    no validation (a validation set must decode entirely)."""
    opt = sr_model_options(data, name, total_iter=total_iter, save_freq=save_freq)
    opt['datasets']['train'].update(use_hflip=False, use_rot=False)
    del opt['datasets']['val'], opt['val']
    return opt


def corrupt(path):
    """Keep the first bytes of an image only (its header): the file exists but no longer decodes."""
    path.write_bytes(path.read_bytes()[:20])
    return path


def train(tmp_path, options_path, *args):
    return run_main(TRAIN_SCRIPT, '-opt', options_path, *args, cwd=tmp_path, env=ENV)


def train_until_signalled(tmp_path, options_path, experiment, signum=signal.SIGTERM, every_process=False,
                          under_torchrun=False):
    """Start train.py (under torchrun: 2 ranks) in a new session; after its first logged iteration, send
    ``signum`` to the process holding the experiment's lock (rank 0 under torchrun), or to every process
    of the run as Ctrl-C and SLURM do; return (exit code, output)."""
    launcher = TORCHRUN if under_torchrun else [sys.executable]
    process = subprocess.Popen([*launcher, str(TRAIN_SCRIPT), '-opt', str(options_path)], cwd=tmp_path, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = process.stdout
    lines = []
    try:
        for line in output:
            lines.append(line)
            if re.search(r'iter:\s+1, lr', line):
                if every_process:
                    os.killpg(process.pid, signum)
                else:
                    os.kill(int((experiment / '.lock').read_text().split()[0]), signum)
                break
        lines.extend(output)
        return process.wait(timeout=300), ''.join(lines)
    finally:
        process.kill()
        process.wait()


def stop_iteration(output, signal_name='SIGTERM'):
    match = re.search(rf'Stopped by {signal_name}: checkpoint of iteration (\d+): (\S+);', output)
    assert match, output[-4000:]
    return int(match[1]), Path(match[2])


def started_at(experiment):
    return int(re.findall(r'Start training from epoch: \d+, iter: (\d+)\n', read_train_log(experiment))[-1])


def latest_weights(tmp_path, name):
    return torch.load(tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth')['params']


def assert_same_weights(first, second):
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=1e-6, msg=key)


# stop signals ------------------------------------------------------------------------------------------

def test_sigterm_saves_the_stop_iteration_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
    data = write_paired_folder(tmp_path / 'data', size=16)
    # with a replaced sample too: 2 iterations per epoch, so the resumed part meets it at least once
    unreadable = corrupt(data / 'gt' / '002.png')
    experiment = tmp_path / 'experiments' / 'stopped'
    long_run = write_options(tmp_path / 'long.yml', deterministic_options(data, 'stopped', total_iter=10 ** 5))
    code, output = train_until_signalled(tmp_path, long_run, experiment)
    assert code == STOPPED_EXIT_CODE, output[-4000:]
    stopped_at, state = stop_iteration(output)
    assert state == experiment / 'training_states' / f'{stopped_at}.state'
    assert torch.load(state, weights_only=False)['iter'] == stopped_at
    assert (experiment / 'models' / f'net_g_{stopped_at}.pth').is_file()
    assert not (experiment / '.lock').exists()

    total = stopped_at + 3
    resumed = train(tmp_path, write_options(tmp_path / 'r.yml', deterministic_options(data, 'stopped', total)),
                    '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert started_at(experiment) == stopped_at
    assert f'Training file {unreadable} cannot be read' in sorted(experiment.glob('train_*.log'))[-1].read_text()
    whole = train(tmp_path, write_options(tmp_path / 'w.yml', deterministic_options(data, 'whole', total)))
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert_same_weights(latest_weights(tmp_path, 'whole'), latest_weights(tmp_path, 'stopped'))


def test_a_signal_to_every_process_spares_the_loader_workers(tmp_path):
    data = write_paired_folder(tmp_path / 'data', size=16)
    experiment = tmp_path / 'experiments' / 'workers'
    opt = deterministic_options(data, 'workers', total_iter=10 ** 5)
    opt['datasets']['train']['num_worker_per_gpu'] = 2
    options = write_options(tmp_path / 'o.yml', opt)
    code, output = train_until_signalled(tmp_path, options, experiment, signal.SIGUSR1, every_process=True)
    assert code == STOPPED_EXIT_CODE, output[-4000:]
    stopped_at, state = stop_iteration(output, 'SIGUSR1')
    assert torch.load(state, weights_only=False)['iter'] == stopped_at
    assert 'DataLoader worker' not in output


def test_torchrun_ranks_stop_at_the_same_iteration_and_resume(tmp_path):
    data = write_paired_folder(tmp_path / 'data', size=16)
    experiment = tmp_path / 'experiments' / 'stopped_ddp'
    options = write_options(tmp_path / 'long.yml', deterministic_options(data, 'stopped_ddp', total_iter=10 ** 5))
    # only rank 0 (the lock's holder) receives the signal: rank 1 stops because they agree
    code, output = train_until_signalled(tmp_path, options, experiment, under_torchrun=True)
    assert code != 0
    assert re.search(rf'exitcode\s*: {STOPPED_EXIT_CODE}', output), output[-4000:]
    stopped_at, state = stop_iteration(output)
    assert state.is_file() and not (experiment / '.lock').exists()
    longer = write_options(tmp_path / 'r.yml', deterministic_options(data, 'stopped_ddp', stopped_at + 2))
    resumed = subprocess.run([*TORCHRUN, str(TRAIN_SCRIPT), '-opt', str(longer), '--auto_resume'], cwd=tmp_path,
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert started_at(experiment) == stopped_at
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()


@pytest.fixture
def session(tmp_path):
    data = write_paired_folder(tmp_path / 'data', count=4, size=24, channels=3)
    opt = in_process_options(tmp_path, training_options(tmp_path, data, 'session'))
    session = TrainingSession(build_model(opt), opt, iterations_per_epoch=2)
    yield session
    session.close()


def step(session, iteration):
    session.feed_data({'lq': torch.rand(2, 3, 16, 16), 'gt': torch.rand(2, 3, 16, 16), UNREADABLE_KEY: ['[]', '[]']})
    session.optimize_parameters(iteration)


def test_a_second_signal_during_the_save_changes_nothing(session, monkeypatch):
    step(session, 1)
    os.kill(os.getpid(), signal.SIGUSR1)
    real_save = torch.save

    def save_interrupted_by_sigterm(obj, path):
        os.kill(os.getpid(), signal.SIGTERM)
        real_save(obj, path)

    monkeypatch.setattr(torch, 'save', save_interrupted_by_sigterm)
    with pytest.raises(TrainingStopped) as stopped:
        step(session, 2)  # the agreed stop comes before the step of iteration 2
    assert stopped.value.code == STOPPED_EXIT_CODE
    assert session.signals.received == signal.SIGUSR1
    paths = session.opt['path']
    assert torch.load(Path(paths['training_states']) / '1.state', weights_only=False)['iter'] == 1
    assert torch.load(Path(paths['models']) / 'net_g_1.pth')['params'].keys()
    assert not [p for folder in ('models', 'training_states') for p in Path(paths[folder]).iterdir()
                if p.name.endswith('.tmp')]


def test_the_help_documents_the_exit_code():
    assert f'{STOPPED_EXIT_CODE} stopped by SIGTERM, SIGINT or SIGUSR1' in help_text('train')


# a crash saves first -----------------------------------------------------------------------------------

class FailingPairedDataset(PairedImageDataset):
    """Raises at the n-th sample it gives (n: ``fail_at``; 0: never)."""
    given, fail_at = 0, 0

    def __getitem__(self, index):
        type(self).given += 1
        if type(self).given == self.fail_at:
            raise RuntimeError('a bug in the data pipeline')
        return super().__getitem__(index)


if 'FailingPairedDataset' not in DATASET_REGISTRY:
    DATASET_REGISTRY.register(FailingPairedDataset)


def train_failing_at(tmp_path, options, fail_at, *args):
    FailingPairedDataset.given, FailingPairedDataset.fail_at = 0, fail_at
    return train(tmp_path, options, *args)


def test_a_crash_saves_the_last_completed_iteration_and_auto_resume_continues(tmp_path):
    data = write_paired_folder(tmp_path / 'data', size=16)
    opt = deterministic_options(data, 'crashed', total_iter=6)
    opt['datasets']['train']['type'] = 'FailingPairedDataset'
    options = write_options(tmp_path / 'o.yml', opt)
    # batches of 2 (SRModel has no preflight): the 8th sample fails iteration 4, after 3 complete ones
    crashed = train_failing_at(tmp_path, options, 8)
    assert crashed.returncode != 0 and 'a bug in the data pipeline' in crashed.stderr
    experiment = tmp_path / 'experiments' / 'crashed'
    state = experiment / 'training_states' / '3.state'
    assert f'RuntimeError after iteration 3: saved its checkpoint {state}' in crashed.stderr
    assert torch.load(state, weights_only=False)['iter'] == 3
    resumed = train_failing_at(tmp_path, options, 0, '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert started_at(experiment) == 3
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()


def test_a_bug_before_the_first_checkpoint_keeps_its_traceback_and_leaves_no_folder(tmp_path):
    data = write_paired_folder(tmp_path / 'data', size=16)
    opt = deterministic_options(data, 'crashed_early', total_iter=6)
    opt['datasets']['train']['type'] = 'FailingPairedDataset'
    crashed = train_failing_at(tmp_path, write_options(tmp_path / 'o.yml', opt), 1)
    assert crashed.returncode == 1 and 'Traceback' in crashed.stderr and 'a bug in the data pipeline' in crashed.stderr
    experiment = tmp_path / 'experiments' / 'crashed_early'
    assert f'basicsr-snn-train: removed {experiment} (nothing was saved there)' in crashed.stderr
    assert not (tmp_path / 'experiments').exists()


def test_a_crash_never_saves_non_finite_weights(session):
    step(session, 1)
    with torch.no_grad():
        next(session.model.net_g.parameters()).fill_(float('nan'))
    with captured_log() as messages:
        session.after_crash(RuntimeError('boom'))
    assert not list(Path(session.opt['path']['training_states']).iterdir())
    assert any(m.startswith("RuntimeError after iteration 1: not saved, ['net_g'") for m in messages), messages


# unreadable training files -----------------------------------------------------------------------------

def test_unreadable_training_files_are_replaced_named_and_bounded(tmp_path):
    data = write_paired_folder(tmp_path / 'data', count=12, size=16)
    bad = [corrupt(data / 'gt' / '003.png'), corrupt(data / 'lq' / '008.png')]
    finished = train(tmp_path, write_options(tmp_path / 'a.yml', deterministic_options(data, 'tolerant', 6)))
    assert finished.returncode == 0, finished.stderr[-3000:]
    log = read_train_log(tmp_path / 'experiments' / 'tolerant')
    for path in bad:
        assert f'Training file {path} cannot be read' in log
    assert re.search(r'2 training file\(s\) could not be read and were replaced', log)

    opt = deterministic_options(data, 'strict', 6)
    opt['datasets']['train']['max_bad_samples'] = 1
    stopped = train(tmp_path, write_options(tmp_path / 'b.yml', opt))
    assert stopped.returncode == 1
    message = [line for line in stopped.stderr.splitlines() if 'more than datasets.train.max_bad_samples: 1' in line]
    assert message and all(str(path) in message[0] for path in bad) and 'scripts/check_data.py' in message[0]


def test_the_replacement_is_the_next_readable_sample(tmp_path):
    from basicsr.data import build_dataset
    data = write_paired_folder(tmp_path / 'data', count=4, size=16)
    corrupt(data / 'lq' / '001.png')
    corrupt(data / 'gt' / '002.png')
    opt = deterministic_options(data, 'x', 1)['datasets']['train']
    dataset = SkipUnreadableSamples(build_dataset({**opt, 'phase': 'train', 'scale': 1}))
    sample = dataset[1]
    assert sample['gt_path'].endswith('003.png')
    assert [source for source, _ in json.loads(sample[UNREADABLE_KEY])] == [str(data / 'lq' / '001.png'),
                                                                            str(data / 'gt' / '002.png')]
    assert json.loads(dataset[3][UNREADABLE_KEY]) == []


def test_an_error_of_a_readable_sample_is_raised_as_it_is(tmp_path):
    from basicsr.data import build_dataset
    data = write_paired_folder(tmp_path / 'data', count=2, size=16)
    opt = {**deterministic_options(data, 'x', 1)['datasets']['train'], 'phase': 'train', 'scale': 1, 'gt_size': 64}
    with pytest.raises(ValueError, match='smaller than patch size'):
        SkipUnreadableSamples(build_dataset(opt))[0]


def test_the_session_counts_distinct_files_and_stops_past_the_bound(session):
    session.max_bad_samples = 1
    first = json.dumps([['a.png', 'ValueError: bad']])
    for _ in range(2):  # the same file twice counts once
        session.feed_data({'lq': torch.rand(1, 3, 8, 8), 'gt': torch.rand(1, 3, 8, 8), UNREADABLE_KEY: [first]})
    with pytest.raises(TooManyBadSamples, match=r"2 training files .*\['a\.png', 'b\.png'\].*scripts/check_data\.py"):
        session.feed_data({'lq': torch.rand(1, 3, 8, 8), 'gt': torch.rand(1, 3, 8, 8),
                           UNREADABLE_KEY: [json.dumps([['b.png', 'OSError: gone']])]})


def test_the_preflight_passes_over_an_unreadable_first_training_file(tmp_path):
    from basicsr_snn.models import preflight
    data = write_paired_folder(tmp_path / 'data', count=3, size=24, channels=3)
    clean = write_paired_folder(tmp_path / 'clean', count=1, size=24, channels=3)
    corrupt(data / 'gt' / '000.png')
    opt = in_process_options(tmp_path, training_options(tmp_path, data, 'preflight'))
    opt['datasets']['val'].update(dataroot_gt=str(clean / 'gt'), dataroot_lq=str(clean / 'lq'))
    preflight.check_datasets(opt, {})
    opt['datasets']['train']['max_bad_samples'] = 0
    with pytest.raises(ValueError, match=r'datasets\.train: sample 0 \(.*000\.png\) cannot be read'):
        preflight.check_datasets(opt, {})


@pytest.mark.parametrize('value', [-1, 1.5, 'ten'])
def test_max_bad_samples_is_checked(value):
    with pytest.raises(ValueError, match=r'datasets\.train\.max_bad_samples must be an integer >= 0'):
        SkipUnreadableSamples([], value)


# a full disk is named ----------------------------------------------------------------------------------

def no_space_left(obj, path):
    Path(path).write_bytes(b'partial')
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_folder_the_intact_checkpoint_and_the_fix(session, monkeypatch):
    step(session, 1)
    session.save(0, 1)
    monkeypatch.setattr(torch, 'save', no_space_left)
    step(session, 2)
    with pytest.raises(CheckpointWriteError) as failed:
        session.save(0, 2)
    models = Path(session.opt['path']['models'])
    states = Path(session.opt['path']['training_states'])
    line = describe_error(failed.value)
    assert '\n' not in line
    assert f'cannot write {models / "net_g_2.pth"} (OSError: [Errno 28] No space left on device)' in line
    assert re.search(rf'its folder {re.escape(str(models))} has [\d.]+ [KMG]?B free', line)
    assert f'the previous checkpoint, iteration 1 ({states / "1.state"}), is intact' in line
    assert 'free space or move experiments/ to a larger disk, then rerun with --auto_resume' in line
    assert sorted(p.name for p in models.iterdir()) == ['net_g_1.pth']
    assert torch.load(states / '1.state', weights_only=False)['iter'] == 1


def test_a_full_disk_leaves_a_cached_result_unchanged_and_a_script_says_so_in_one_line(tmp_path, monkeypatch):
    result = tmp_path / 'arm' / 'result.json'
    result.parent.mkdir()
    result.write_text('{"old": 1}')

    def no_space(self, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, 'write_text', no_space)
    with pytest.raises(SystemExit) as ended:
        with user_errors_as_one_line('pareto.py', results_folder=tmp_path):
            atomic_write_text('{"new": 2}', result)
    line, hint = ended.value.code.splitlines()
    assert re.fullmatch(rf'pareto\.py: cannot write {re.escape(str(result))} \(OSError: \[Errno 28\] No space left on '
                        rf'device\): its folder {re.escape(str(result.parent))} has [\d.]+ [KMG]?B free; the finished '
                        rf'results in {re.escape(str(tmp_path))} are intact; free space or move .* then rerun the same '
                        r'command \(finished results are skipped\)', line)
    assert hint == 'pareto.py: add --debug for the full traceback'
    assert result.read_text() == '{"old": 1}' and sorted(p.name for p in result.parent.iterdir()) == ['result.json']

"""Helpers for tests that run the real train/test entry points: in this process (``main(argv)``), or in processes
of their own where the process is what is tested (torchrun, signals)."""
import contextlib
import importlib.util
import io
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml


REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO_ROOT / 'basicsr_snn' / 'train.py'
TEST_SCRIPT = REPO_ROOT / 'basicsr_snn' / 'test.py'


def load_script(name):
    """``scripts/<name>.py`` as a module, to call its ``main`` in this process."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_paired_folder(root, count=4, size=24, channels=1, seed=0):
    """Write `count` (noisy, clean) PNG pairs under root/{lq,gt} with matching names."""
    rng = np.random.default_rng(seed)
    for sub in ('lq', 'gt'):
        (Path(root) / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        yy, xx = np.mgrid[0:size, 0:size]
        clean = (127 + 100 * np.sin((xx + 3 * i) / 4.0) * np.cos(yy / 5.0)).astype(np.float32)
        clean = np.repeat(clean[..., None], channels, axis=2)
        noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255)
        cv2.imwrite(str(Path(root) / 'gt' / f'{i:03d}.png'), clean.astype(np.uint8))
        cv2.imwrite(str(Path(root) / 'lq' / f'{i:03d}.png'), noisy.astype(np.uint8))
    return Path(root)


RANK_RECORDING_TRAIN_SCRIPT = '''
"""basicsr-snn-train, with what each rank holds written down: its loss keys before the reduction
(loss_keys_rank<r>.txt) and the parameters of its bare net_g at every save (net_g_rank<r>_<iter>.pth,
-1 = latest). Buffers are left out: DDP copies rank 0's (BN statistics) at the start of each forward,
so between steps each rank holds those of its own last batch."""
import sys

import torch

from basicsr_snn.cli import run_pipeline  # imports the package first: BasicSR then imports
from basicsr.models import build_model  # noqa: E402


def recording_model(opt):
    model = build_model(opt)
    rank, save, reduce_loss_dict = opt['rank'], model.save, model.reduce_loss_dict

    def save_and_dump(epoch, current_iter):
        save(epoch, current_iter)
        parameters = {name: p.detach() for name, p in model.get_bare_model(model.net_g).named_parameters()}
        torch.save(parameters, f'net_g_rank{rank}_{current_iter}.pth')

    def record_keys(loss_dict):
        with open(f'loss_keys_rank{rank}.txt', 'a') as keys:
            keys.write(' '.join(loss_dict) + '\\n')
        return reduce_loss_dict(loss_dict)

    model.save = save_and_dump
    model.reduce_loss_dict = record_keys
    return model


sys.exit(run_pipeline('train', build_model=recording_model))
'''


def signalling_model(stop_signal, after):
    """A ``build_model`` whose rank 0 sends its process ``stop_signal`` (a name) once the step of iteration ``after``
    is done: a stop signal that arrives mid-run, at an iteration the test chooses."""
    from basicsr.models import build_model

    def build(opt):
        model = build_model(opt)
        step = model.optimize_parameters

        def step_then_signal(current_iter):
            step(current_iter)
            if current_iter == after and opt['rank'] == 0:
                os.kill(os.getpid(), getattr(signal, stop_signal))

        model.optimize_parameters = step_then_signal
        return model

    return build


SIGNALLING_TRAIN_SCRIPT = f'''
"""basicsr-snn-train with :func:`pipeline_utils.signalling_model` ($STOP_SIGNAL after $SIGNAL_AFTER_ITER)."""
import os
import sys

sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from basicsr_snn.cli import run_pipeline  # noqa: E402
from pipeline_utils import signalling_model  # noqa: E402

build = signalling_model(os.environ['STOP_SIGNAL'], int(os.environ['SIGNAL_AFTER_ITER']))
sys.exit(run_pipeline('train', build_model=build))
'''


def write_rank_recording_script(folder):
    """A train script for ``run_entry_point`` that records each rank's loss keys and weights (see the script)."""
    script = Path(folder) / 'train_recording_ranks.py'
    script.write_text(RANK_RECORDING_TRAIN_SCRIPT)
    return script


def assert_ranks_hold_equal_weights(folder, nproc=2):
    """Every rank's net_g parameters equal rank 0's at every save, and they changed between saves.

    Returns the saves' iterations (-1, the latest, last) and rank 0's parameters at each."""
    folder = Path(folder)
    saves = sorted((int(p.stem.rsplit('_', 1)[1]) for p in folder.glob('net_g_rank0_*.pth')),
                   key=lambda iteration: iteration if iteration >= 0 else float('inf'))  # -1, the latest, last
    assert len(saves) >= 2, f'fewer than two saves recorded in {folder}'
    dumps = {rank: [torch.load(folder / f'net_g_rank{rank}_{i}.pth') for i in saves] for rank in range(nproc)}
    for rank in range(1, nproc):
        for iteration, reference, state in zip(saves, dumps[0], dumps[rank]):
            for key, value in reference.items():
                assert torch.equal(state[key], value), f'rank {rank}, save {iteration}: {key} differs from rank 0'
    first, last = dumps[0][0], dumps[0][-1]
    assert any(not torch.equal(first[key], last[key]) for key in first), 'the weights never changed'
    return saves, dumps[0]


LOCK_HOLDER_SCRIPT = """
import sys
import time

from basicsr_snn.utils import experiment_lock

experiment_lock.take(sys.argv[1])
print('held', flush=True)
time.sleep(300)
"""


def hold_lock(lock, cwd):
    """A process that holds the experiment lock ``lock`` (a file) until killed; its ``kill()`` is a SIGKILL, after
    which only the operating system can release the lock."""
    script = Path(cwd) / 'hold_lock.py'
    script.write_text(LOCK_HOLDER_SCRIPT)
    holder = subprocess.Popen([sys.executable, str(script), str(lock)], cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    if holder.stdout.readline() != 'held\n':
        holder.kill()
        raise AssertionError(f'the lock holder ended: {holder.communicate()[0]}')
    return holder


def run_program(script, *args, cwd, env=None, timeout=600):
    """``python script ARGS`` in a process of its own, as ``subprocess.run(capture_output=True, text=True)``."""
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def write_options(path, options):
    Path(path).write_text(yaml.safe_dump(options, sort_keys=False))
    return Path(path)


def run_main(script, *args, cwd, env=None, **pipeline_kwargs):
    """``python script ARGS`` for train.py or test.py, run in this process as ``main(ARGS)`` in ``cwd`` with the
    environment ``env``: a CompletedProcess with the exit code and what the run printed (an uncaught error's
    traceback ends in stderr with code 1, as the interpreter does)."""
    from basicsr_snn.cli import run_pipeline
    kind = {TRAIN_SCRIPT: 'train', TEST_SCRIPT: 'test'}[Path(script)]
    stdout, stderr = io.StringIO(), io.StringIO()
    previous_env, previous_cwd = dict(os.environ), os.getcwd()
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                returncode = run_pipeline(kind, [str(arg) for arg in args], **pipeline_kwargs)
            except Exception:  # noqa: BLE001  (what the interpreter does with an uncaught error)
                traceback.print_exc()
                returncode = 1
    finally:
        os.chdir(previous_cwd)
        os.environ.clear()
        os.environ.update(previous_env)
    return subprocess.CompletedProcess([sys.executable, str(script), *map(str, args)], returncode, stdout.getvalue(),
                                       stderr.getvalue())


def run_entry_point(script, opt_path, *extra_args, cwd, launcher=None, nproc=1, timeout=600):
    """Run train.py/test.py (under torchrun when nproc > 1, else in this process) and return the CompletedProcess."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    args = ['-opt', str(opt_path), *(['--launcher', launcher] if launcher else []), *extra_args]
    if nproc > 1:
        command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
                   str(script), *args]
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    else:
        result = run_main(script, *args, cwd=cwd, env=env)
    assert result.returncode == 0, f'{" ".join(result.args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}'
    return result


def read_train_log(experiment_dir):
    logs = sorted(Path(experiment_dir).glob('train_*.log'))
    assert logs, f'no train log in {experiment_dir}'
    return '\n'.join(log.read_text() for log in logs)

"""One writer per experiment folder: ``experiments/<name>/.lock`` holds the training process's pid.

Rank 0 takes the lock before it writes anything (when it resumes) or right after BasicSR has
created the folder (a fresh run), and releases it on exit. A second run on the same experiment
stops at once while the first one's process lives, including torchrun workers that outlived their
launcher; a lock whose process is gone is stale and taken over.
"""
import atexit
import os
import socket
from pathlib import Path

LOCK_NAME = '.lock'


class ExperimentLocked(RuntimeError):
    """Another live process trains this experiment."""


def _holder(lock):
    """(pid, host) written in ``lock``; None when it cannot be read."""
    try:
        pid, host = lock.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_free(experiment_dir):
    """Raise :class:`ExperimentLocked` when a live process other than this one holds the experiment."""
    lock = Path(experiment_dir) / LOCK_NAME
    holder = _holder(lock) if lock.is_file() else None
    if holder is None or holder == (os.getpid(), socket.gethostname()):
        return
    pid, host = holder
    if host != socket.gethostname():
        raise ExperimentLocked(f'{lock} is held by process {pid} on host {host}, which this host cannot check; if '
                               f'that run is over, delete {lock}')
    if _alive(pid):
        raise ExperimentLocked(f'experiment {Path(experiment_dir).name} is being trained by process {pid} ({lock}); '
                               f'stop it first (kill {pid}: under torchrun, kill every worker) or choose another name')


def acquire(experiment_dir):
    """Take the experiment's lock for this process (released at exit); a stale lock is taken over."""
    check_free(experiment_dir)
    lock = Path(experiment_dir) / LOCK_NAME
    lock.parent.mkdir(parents=True, exist_ok=True)
    temporary = lock.with_name(f'{LOCK_NAME}.{os.getpid()}')
    temporary.write_text(f'{os.getpid()} {socket.gethostname()}\n')
    os.replace(temporary, lock)
    atexit.register(release, experiment_dir)


def release(experiment_dir):
    """Remove the lock if this process holds it."""
    lock = Path(experiment_dir) / LOCK_NAME
    if _holder(lock) == (os.getpid(), socket.gethostname()):
        lock.unlink(missing_ok=True)

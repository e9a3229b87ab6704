"""One writer per folder: a lock file holding the owner's pid and host.

Training: ``experiments/<name>/.lock``. Rank 0 takes it before it writes anything (when it
resumes) or right after BasicSR has created the folder (a fresh run), and releases it on exit.
A second run on the same experiment stops at once while the first one's process lives, torchrun
workers that outlived their launcher included; a lock whose process is gone is stale and taken
over. The gap study locks each arm's folder the same way, so that two processes can share a study.
"""
import atexit
import os
import socket
from pathlib import Path

LOCK_NAME = '.lock'


class ExperimentLocked(RuntimeError):
    """Another live process trains this experiment."""


def _owner():
    return os.getpid(), socket.gethostname()


def _holder(lock):
    """(pid, host) written in ``lock``; None when it cannot be read."""
    try:
        pid, host = Path(lock).read_text().split()
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


def live_holder(lock: str | Path) -> tuple[int, str] | None:
    """(pid, host) of another process that holds ``lock`` and may be alive; None when it is free or stale."""
    holder = _holder(lock)
    if holder is None or holder == _owner():
        return None
    pid, host = holder
    return holder if host != socket.gethostname() or _alive(pid) else None


def take(lock: str | Path) -> tuple[int, str] | None:
    """Take ``lock`` for this process, taking over a stale one; returns None, or the live holder."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            with open(lock, 'x') as handle:
                handle.write('{} {}\n'.format(*_owner()))
            return None
        except FileExistsError:
            if _holder(lock) == _owner():
                return None
            holder = live_holder(lock)
            if holder is not None:
                return holder
            lock.unlink(missing_ok=True)
    return live_holder(lock)


def release(lock: str | Path) -> None:
    """Remove ``lock`` if this process holds it."""
    if _holder(lock) == _owner():
        Path(lock).unlink(missing_ok=True)


def check_free(experiment_dir: str | Path) -> None:
    """Raise :class:`ExperimentLocked` when another live process holds the experiment."""
    lock = Path(experiment_dir) / LOCK_NAME
    holder = live_holder(lock)
    if holder is None:
        return
    pid, host = holder
    if host != socket.gethostname():
        raise ExperimentLocked(f'{lock} is held by process {pid} on host {host}, which this host cannot check; if '
                               f'that run is over, delete {lock}')
    raise ExperimentLocked(f'experiment {Path(experiment_dir).name} is being trained by process {pid} ({lock}); '
                           f'stop it first (kill {pid}: under torchrun, kill every worker) or choose another name')


def acquire(experiment_dir: str | Path) -> None:
    """Take the experiment's lock for this process (released at exit)."""
    check_free(experiment_dir)
    lock = Path(experiment_dir) / LOCK_NAME
    if take(lock) is not None:
        check_free(experiment_dir)  # taken between the check and now: name the holder
    atexit.register(release, lock)

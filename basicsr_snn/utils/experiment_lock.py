"""One writer per folder: an OS lock (``fcntl.flock``) on a lock file that names its holder.

Training: ``experiments/<name>/.lock``. Rank 0 takes it before it writes anything (when it
resumes) or right after the pipeline has created the folder (a fresh run), and releases it when the run ends.
A second run on the same experiment stops at once while the first one holds it. The operating
system drops the lock when its holder ends, however it ends (SIGKILL, a crash), so a lock is never
stale; the pid and host in the file only name the holder in the message (a file naming a process
that does not hold the lock blocks nothing, whatever that process is). Processes forked by the
holder (DataLoader workers) share its lock until they exit. The gap study locks each arm's folder
the same way, so that two processes can share a study.
"""
import atexit
import fcntl
import os
import socket
from pathlib import Path

LOCK_NAME = '.lock'

#: lock file (absolute path) -> (open descriptor holding the lock, pid of the process that took it)
_held = {}


class ExperimentLocked(RuntimeError):
    """Another live process trains this experiment."""


def _holder(lock):
    """(pid, host) written in ``lock``; ('?', '?') when it cannot be read (being written)."""
    try:
        pid, host = Path(lock).read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return '?', '?'


def _holds(lock):
    entry = _held.get(os.path.abspath(lock))
    return entry is not None and entry[1] == os.getpid()


def _is_the_file_at(descriptor, lock):
    """The locked descriptor is still the file named ``lock`` (a releasing holder unlinks it)."""
    try:
        named, opened = os.stat(lock), os.fstat(descriptor)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def take(lock: str | Path) -> tuple | None:
    """Take ``lock`` for this process; returns None, or the (pid, host) of the process that holds it."""
    lock = Path(lock)
    if _holds(lock):
        return None
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return _holder(lock)
        if _is_the_file_at(descriptor, lock):
            break
        os.close(descriptor)  # locked a file its holder has just unlinked: lock the new one
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f'{os.getpid()} {socket.gethostname()}\n'.encode())
    _held[os.path.abspath(lock)] = (descriptor, os.getpid())
    return None


def release(lock: str | Path) -> None:
    """Remove and unlock ``lock`` if this process holds it."""
    if not _holds(lock):
        return
    descriptor, _ = _held.pop(os.path.abspath(lock))
    Path(lock).unlink(missing_ok=True)  # while still locked: a waiting taker then sees the name is gone
    os.close(descriptor)


def check_free(experiment_dir: str | Path) -> None:
    """Raise :class:`ExperimentLocked` when another process holds the experiment."""
    lock = Path(experiment_dir) / LOCK_NAME
    if _holds(lock):
        return
    try:
        descriptor = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _locked(experiment_dir, _holder(lock)) from None
    finally:
        os.close(descriptor)  # also drops the probe's lock


def acquire(experiment_dir: str | Path) -> None:
    """Take the experiment's lock for this process (released at exit)."""
    lock = Path(experiment_dir) / LOCK_NAME
    holder = take(lock)
    if holder is not None:
        raise _locked(experiment_dir, holder)
    atexit.register(release, lock)


def _locked(experiment_dir, holder):
    pid, host = holder
    return ExperimentLocked(f'experiment {Path(experiment_dir).name} is being trained by process {pid} on {host} '
                            f'({Path(experiment_dir) / LOCK_NAME}); stop it first (kill {pid}: under torchrun, every '
                            'worker) or choose another name')

"""How many torch threads a CPU run uses.

Every small op of a spiking network is a parallel region over the threads; when another process
holds one of the cores, each region waits for the thread that was descheduled, and a step can slow
down by two orders of magnitude (``scripts/bench_speed.py --load N`` measures it). The policy:

1. ``$BASICSR_SNN_THREADS`` (a positive integer), when set;
2. else ``$OMP_NUM_THREADS``, when set (torch already follows it);
3. else the cores this process may use (its CPU affinity) minus the cores other processes keep busy
   now: the busy time of those cores in ``/proc/stat`` over a :data:`SAMPLE_S` second sample, less
   this process's own time (``/proc/self/stat``), rounded; at least 1. A one-minute load average
   would still hold the command that finished a moment ago (an install, a build) and halve the
   threads of a machine that is idle now. Without ``/proc`` (not Linux) the one-minute load average
   stands in.

The choice is made once, at start; a machine that gets busy later is not followed.
"""
import os
import time
from collections.abc import Callable, Iterable

import torch

THREADS_ENV_VAR = 'BASICSR_SNN_THREADS'
#: seconds of /proc/stat sampling: 25 scheduler ticks per core at the usual 100 Hz, and no wait a user notices
SAMPLE_S = 0.25
#: /proc/stat columns that are not work: idle and iowait
IDLE_COLUMNS = (3, 4)
#: user nice system idle iowait irq softirq steal (guest time is already in user and nice)
COUNTED_COLUMNS = 8


def cpu_ticks(cpus: Iterable[int]) -> tuple[int, int]:
    """``(busy, total)`` clock ticks since boot of the cores ``cpus``, from ``/proc/stat``."""
    wanted = {f'cpu{cpu}' for cpu in cpus}
    busy = total = 0
    with open('/proc/stat', encoding='ascii') as stat:
        for line in stat:
            name, *columns = line.split()
            if name in wanted:
                ticks = [int(value) for value in columns[:COUNTED_COLUMNS]]
                total += sum(ticks)
                busy += sum(ticks) - sum(ticks[column] for column in IDLE_COLUMNS)
    return busy, total


def own_ticks() -> int:
    """Clock ticks this process (all its threads) has run, user and system, from ``/proc/self/stat``."""
    with open('/proc/self/stat', encoding='ascii') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()  # after the command name, which may hold spaces
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def busy_cores(cpus: Iterable[int], sample_s: float = SAMPLE_S,
               read: Callable[[], tuple[int, int, int]] | None = None,
               wait: Callable[[float], None] = time.sleep) -> float:
    """How many of the cores ``cpus`` other processes kept busy over the next ``sample_s`` seconds.

    ``read`` returns ``(busy, total, own)`` ticks (default: :func:`cpu_ticks` of ``cpus`` and
    :func:`own_ticks`); the result is ``(busy delta - own delta) / (total delta per core)``, >= 0.
    """
    cpus = sorted(cpus)
    if read is None:
        def read():
            return (*cpu_ticks(cpus), own_ticks())
    busy_before, total_before, own_before = read()
    wait(sample_s)
    busy_after, total_after, own_after = read()
    ticks_per_core = (total_after - total_before) / len(cpus)
    if ticks_per_core <= 0:
        return 0.
    return max(0., (busy_after - busy_before - (own_after - own_before)) / ticks_per_core)


def threads_for(cores: int, busy: float) -> int:
    """The usable cores less the busy ones, rounded, at least 1."""
    return max(1, cores - round(busy))


def choose_threads(sample: Callable[[set[int]], float] = busy_cores) -> tuple[int, str]:
    """``(threads, why)`` by the policy of the module docstring; ``sample(cpus)`` measures the busy cores."""
    override = os.environ.get(THREADS_ENV_VAR)
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f'${THREADS_ENV_VAR} must be a positive integer, got {override!r}')
        return int(override), f'${THREADS_ENV_VAR}'
    if os.environ.get('OMP_NUM_THREADS'):
        return torch.get_num_threads(), '$OMP_NUM_THREADS'
    cpus = os.sched_getaffinity(0)
    try:
        busy = sample(cpus)
        measured = f'{busy:.1f} busy now'
    except OSError:  # no /proc: not Linux
        busy = os.getloadavg()[0]
        measured = f'load average {busy:.1f}'
    return threads_for(len(cpus), busy), f'{len(cpus)} usable cores, {measured}'


def apply_thread_policy() -> str:
    """Set torch's thread count by the policy; return a one-line account of it."""
    threads, why = choose_threads()
    torch.set_num_threads(threads)
    return f'torch threads: {threads} ({why}; set ${THREADS_ENV_VAR} to choose)'

"""How many torch threads a CPU run uses.

Every small op of a spiking network is a parallel region over the threads; when another process
holds one of the cores, each region waits for the thread that was descheduled, and a step can slow
down by two orders of magnitude (``scripts/bench_speed.py --load N`` measures it). The policy:

1. ``$BASICSR_SNN_THREADS`` (a positive integer), when set;
2. else ``$OMP_NUM_THREADS``, when set (torch already follows it);
3. else the cores this process may use (its CPU affinity) minus the work already running on the
   machine (the one-minute load average, rounded), at least 1.

The choice is made once, at start; a machine that gets busy later is not followed.
"""
import os

import torch

THREADS_ENV_VAR = 'BASICSR_SNN_THREADS'


def choose_threads() -> tuple[int, str]:
    """``(threads, why)`` by the policy of the module docstring."""
    override = os.environ.get(THREADS_ENV_VAR)
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f'${THREADS_ENV_VAR} must be a positive integer, got {override!r}')
        return int(override), f'${THREADS_ENV_VAR}'
    if os.environ.get('OMP_NUM_THREADS'):
        return torch.get_num_threads(), '$OMP_NUM_THREADS'
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    return max(1, cores - round(load)), f'{cores} usable cores, load average {load:.1f}'


def apply_thread_policy() -> str:
    """Set torch's thread count by the policy; return a one-line account of it."""
    threads, why = choose_threads()
    torch.set_num_threads(threads)
    return f'torch threads: {threads} ({why}; set ${THREADS_ENV_VAR} to choose)'

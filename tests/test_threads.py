"""The thread policy: cores busy now (a short /proc/stat sample, this process excluded), and the overrides."""
import os
import subprocess
import sys
import time

import pytest

from basicsr_snn.utils import threads
from basicsr_snn.utils.threads import THREADS_ENV_VAR, busy_cores, choose_threads, threads_for


def readings(*samples):
    """A ``read`` for busy_cores that returns the given (busy, total, own) ticks in turn."""
    queue = list(samples)
    return lambda: queue.pop(0)


def no_wait(_seconds):
    pass


def test_busy_cores_counts_other_processes_and_not_this_one():
    # 4 cores over 25 ticks each: 100 ticks in all
    idle = busy_cores(range(4), read=readings((1000, 5000, 300), (1000, 5100, 300)), wait=no_wait)
    helper = busy_cores(range(4), read=readings((1000, 5000, 300), (1025, 5100, 300)), wait=no_wait)
    ourselves = busy_cores(range(4), read=readings((1000, 5000, 300), (1050, 5100, 350)), wait=no_wait)
    both = busy_cores(range(4), read=readings((1000, 5000, 300), (1075, 5100, 350)), wait=no_wait)
    assert (idle, helper, ourselves, both) == (0., 1., 0., 1.)


def test_an_idle_machine_gives_every_usable_core_and_a_busy_one_fewer(monkeypatch):
    monkeypatch.delenv(THREADS_ENV_VAR, raising=False)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, 'getloadavg', lambda: (4., 4., 4.))  # a past install: must not matter
    assert choose_threads(sample=lambda cpus: 0.) == (4, '4 usable cores, 0.0 busy now')
    assert choose_threads(sample=lambda cpus: 1.2)[0] == 3
    assert choose_threads(sample=lambda cpus: 7.)[0] == 1
    assert [threads_for(2, busy) for busy in (0., 0.4, 0.6, 1.6, 3.)] == [2, 2, 1, 1, 1]


def test_without_proc_the_load_average_stands_in(monkeypatch):
    monkeypatch.delenv(THREADS_ENV_VAR, raising=False)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1})
    monkeypatch.setattr(os, 'getloadavg', lambda: (0.9, 0., 0.))

    def no_proc(cpus):
        raise FileNotFoundError('/proc/stat')

    assert choose_threads(sample=no_proc) == (1, '2 usable cores, load average 0.9')


def test_an_explicit_setting_wins(monkeypatch):
    monkeypatch.setenv(THREADS_ENV_VAR, '3')
    assert choose_threads(sample=lambda cpus: 100.) == (3, f'${THREADS_ENV_VAR}')
    monkeypatch.setenv(THREADS_ENV_VAR, 'many')
    with pytest.raises(ValueError, match=r'\$BASICSR_SNN_THREADS must be a positive integer'):
        choose_threads()
    monkeypatch.delenv(THREADS_ENV_VAR)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    assert choose_threads(sample=lambda cpus: 100.)[1] == '$OMP_NUM_THREADS'


def process_ticks(pid):
    with open(f'/proc/{pid}/stat', encoding='ascii') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.skipif(not os.path.exists('/proc/stat'), reason='needs Linux /proc')
def test_a_busy_helper_process_shows_in_the_real_sample():
    cpus = os.sched_getaffinity(0)
    helper = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(0.3)  # past the interpreter's start
        helper_before, started = process_ticks(helper.pid), time.monotonic()
        busy = busy_cores(cpus, sample_s=1.0)
        helper_cores = (process_ticks(helper.pid) - helper_before) / os.sysconf('SC_CLK_TCK') / (
            time.monotonic() - started)
    finally:
        helper.kill()
        helper.wait()
    if helper_cores < 0.05:
        pytest.skip(f'the machine is too busy to see the helper: it got {helper_cores:.2f} cores')
    # whatever else runs beside the test, the helper's share of the sample is part of the busy cores
    # (within a few 10 ms scheduler ticks)
    assert busy >= 0.9 * helper_cores - 0.05


@pytest.mark.skipif(not os.path.exists('/proc/stat'), reason='needs Linux /proc')
def test_the_policy_samples_the_machine_by_default(monkeypatch):
    monkeypatch.delenv(THREADS_ENV_VAR, raising=False)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    started = time.monotonic()
    count, why = choose_threads()
    assert time.monotonic() - started < 2 and 1 <= count <= len(os.sched_getaffinity(0))
    assert why.endswith(' busy now') and why.startswith(f'{len(os.sched_getaffinity(0))} usable cores, ')


@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='needs Linux /proc')
def test_own_ticks_grow_with_this_process_s_work():
    before = threads.own_ticks()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert threads.own_ticks() - before >= 0.1 * os.sysconf('SC_CLK_TCK')

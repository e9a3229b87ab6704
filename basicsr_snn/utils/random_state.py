"""The random-number state of a process (torch, CUDA, NumPy, Python): what a checkpoint holds so that a
resumed run with random crops, flips or noise draws what the uninterrupted run drew."""
import contextlib
import random

import numpy as np
import torch


def capture() -> dict:
    """This process's generator states, copied."""
    return {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'python': random.getstate(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if state['cuda'] and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


@contextlib.contextmanager
def preserved():
    """What runs inside (a validation) leaves the generators as it found them, so training draws the same
    numbers whether or not it validated, and a resumed run the same as an uninterrupted one."""
    state = capture()
    try:
        yield
    finally:
        restore(state)

"""The controlled comparison behind ``scripts/bench_distill.py``: same batches, same metrics.

Two runs compared at "the same data order" must see the same crops, flips and noise in the same
order, even though training itself draws random numbers in between (dropout, rate encoding,
DDP, ...). :class:`SeededBatches` keeps its own random state for that. :func:`evaluate_model`
scores any BasicSR model (SRModel, SNNModel, DistillSNNModel) the way BasicSR's validation does,
without its side effects (best-metric bookkeeping, the teacher pass of DistillSNNModel's first
validation), and :func:`compare_curves` turns two validation curves into the convergence figures.
"""
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from basicsr_snn.evaluation import WHOLE_IMAGE_METRICS, evaluate, restore_with


class _PrivateRandomState:
    """Python, NumPy and torch (CPU) random states swapped in only inside ``with``."""

    def __init__(self, seed):
        self.states = (random.Random(seed).getstate(), np.random.RandomState(seed).get_state(),
                       torch.Generator().manual_seed(seed).get_state())

    def __enter__(self):
        self.outside = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        self._set(self.states)

    def __exit__(self, *exc_info):
        self.states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        self._set(self.outside)

    @staticmethod
    def _set(states):
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


class SeededBatches:
    """``num_batches`` training batches, the same ones in the same order on every iteration.

    Each ``iter()`` restarts from ``seed``: shuffling, the dataset's crops/flips (Python
    ``random``) and noise (torch RNG) run under a private random state, so whatever the caller
    draws between two batches changes nothing. Epochs continue (reshuffled) until ``num_batches``
    batches were given; incomplete last batches are dropped.

    Args:
        dataset (Dataset): Training dataset (e.g. GaussianNoiseDataset, phase 'train').
        batch_size (int): Samples per batch.
        num_batches (int): Batches per pass (the training iterations).
        seed (int): Seed of the order, the augmentations and the noise.
    """

    def __init__(self, dataset, batch_size, num_batches, seed):
        if len(dataset) < batch_size:
            raise ValueError(f'batch size {batch_size} exceeds the {len(dataset)} training images')
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.seed = seed

    def __len__(self):
        return self.num_batches

    def __iter__(self):
        return self.iterate()

    def iterate(self, start: int = 0) -> Iterator[dict]:
        """The batches from number ``start`` (0-based) on: those before are drawn and dropped, so a
        resumed run continues with exactly the batches an uninterrupted one would have seen."""
        random_state = _PrivateRandomState(self.seed)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, drop_last=True, num_workers=0,
                            generator=torch.Generator().manual_seed(self.seed))
        given = 0
        while given < self.num_batches:
            with random_state:
                batches = iter(loader)
            for _ in range(min(len(loader), self.num_batches - given)):
                with random_state:
                    batch = next(batches)
                given += 1
                if given > start:
                    yield batch


def evenly_spaced(count: int, limit: int) -> list[int]:
    """Indices of at most ``limit`` items spread evenly over ``range(count)`` (all when limit <= 0)."""
    if limit <= 0 or limit >= count:
        return list(range(count))
    return [round(i * count / limit) for i in range(limit)]


def evaluate_model(model, loader: DataLoader) -> dict:
    """``{'psnr': dB, 'ssim': [0, 1], 'images': int}`` of ``model.test()`` on ``loader`` (batch size 1), scored by
    :func:`basicsr_snn.evaluation.evaluate` on the whole 8-bit image."""
    result = evaluate(restore_with(model), loader, WHOLE_IMAGE_METRICS)
    if not result.images:
        raise ValueError('evaluate_model: the validation loader gave no image')
    return {**result.means, 'images': result.images}


def iterations_to_reach(iterations: list[int], values: list[float], target: float) -> int | None:
    """First validated iteration whose value is at least ``target``; None if none is."""
    return next((iteration for iteration, value in zip(iterations, values) if value >= target), None)


def compare_curves(iterations: list[int], scratch: list[float], distilled: list[float],
                   teacher: float | None = None) -> dict:
    """Convergence figures of a distilled run against its scratch twin on one metric (PSNR).

    Args:
        iterations (list[int]): Validated iterations, shared by both runs.
        scratch (list[float]): The scratch run's values at those iterations.
        distilled (list[float]): The distilled run's values.
        teacher (float | None): The teacher's value.

    Returns:
        dict: ``scratch_final``, ``kd_final``, ``gain_at_equal_budget`` (kd - scratch at the last
        iteration), ``scratch_iters_to_final`` (first validated iteration where scratch is at its
        final value or above: the last one unless its curve fell), ``kd_iters_to_scratch_final``
        (the same for KD against the scratch final value; None: not reached), ``speedup`` (the
        ratio of the two; None: not reached), and with a teacher ``teacher``,
        ``kd_minus_teacher``, ``scratch_minus_teacher``.
    """
    if not (len(iterations) == len(scratch) == len(distilled)) or not iterations:
        raise ValueError(f'compare_curves needs equally long, non-empty curves; got {len(iterations)} iterations, '
                         f'{len(scratch)} scratch and {len(distilled)} distilled values')
    scratch_reached = iterations_to_reach(iterations, scratch, scratch[-1])
    reached = iterations_to_reach(iterations, distilled, scratch[-1])
    figures = {
        'scratch_final': scratch[-1],
        'kd_final': distilled[-1],
        'gain_at_equal_budget': distilled[-1] - scratch[-1],
        'scratch_iters_to_final': scratch_reached,
        'kd_iters_to_scratch_final': reached,
        'speedup': scratch_reached / reached if reached else None,
    }
    if teacher is not None:
        figures.update(teacher=teacher, kd_minus_teacher=distilled[-1] - teacher,
                       scratch_minus_teacher=scratch[-1] - teacher)
    return figures

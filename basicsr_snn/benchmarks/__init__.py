"""Pieces of the benchmark scripts that tests can reach directly.

* :mod:`~basicsr_snn.benchmarks.protocol`: identical training batches for several runs, PSNR/SSIM
  of a BasicSR model on a validation set, and the convergence figures (speedup, gain).
* :mod:`~basicsr_snn.benchmarks.training_logs`: the scalars of a BasicSR experiment, read from
  its ``train_*.log`` or its tensorboard events, under tensorboard's tag names.
"""
from basicsr_snn.benchmarks.protocol import (SeededBatches, compare_curves, evaluate_model, evenly_spaced,
                                             iterations_to_reach)
from basicsr_snn.benchmarks.training_logs import parse_train_log, read_experiment_scalars, read_tensorboard_scalars

__all__ = [
    'SeededBatches', 'compare_curves', 'evaluate_model', 'evenly_spaced', 'iterations_to_reach', 'parse_train_log',
    'read_experiment_scalars', 'read_tensorboard_scalars'
]

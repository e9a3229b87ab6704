"""Feature-hint distillation from a frozen teacher, in four separate concepts (as in mmrazor):

* :mod:`~basicsr_snn.distill.recorder`: *where* - forward-hook recorders of named modules;
* :mod:`~basicsr_snn.distill.adapter`: *how shapes meet* - 1x1 conv / resize connectors;
* :mod:`~basicsr_snn.distill.hint_loss`: *what compares* - any registered BasicSR loss;
* :mod:`~basicsr_snn.distill.schedule`: *how much* - the weight of the distillation term over time;

plus :mod:`~basicsr_snn.distill.options`, the checked ``train.distill`` options. The training
step that joins them is :class:`basicsr_snn.models.distill_snn_model.DistillSNNModel`.
"""
from basicsr_snn.distill.adapter import ADAPTER_TYPES, RESIZE_MODES, FeatureAdapter, HintAdapters
from basicsr_snn.distill.hint_loss import (DEFAULT_HINT_LOSS, NORMALIZATIONS, HintComparison, build_comparison_loss,
                                           standardize_channels)
from basicsr_snn.distill.options import DistillOptions, HintOptions, OutputTermOptions
from basicsr_snn.distill.recorder import REDUCTIONS, FeatureRecorder, find_module
from basicsr_snn.distill.schedule import PAPER_GAMMA, SCHEDULE_TYPES, DistillWeightSchedule

__all__ = [
    'ADAPTER_TYPES', 'RESIZE_MODES', 'FeatureAdapter', 'HintAdapters', 'DEFAULT_HINT_LOSS', 'NORMALIZATIONS',
    'HintComparison', 'build_comparison_loss', 'standardize_channels',
    'DistillOptions', 'HintOptions', 'OutputTermOptions', 'REDUCTIONS', 'FeatureRecorder', 'find_module',
    'PAPER_GAMMA', 'SCHEDULE_TYPES', 'DistillWeightSchedule'
]

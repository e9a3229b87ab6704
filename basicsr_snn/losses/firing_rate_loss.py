"""A firing-rate budget: penalise a spiking network's mean firing rate above a target."""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from basicsr_snn.utils.checks import check_number


@LOSS_REGISTRY.register()
class FiringRateLoss(nn.Module):
    """``loss_weight * max(0, rate - target)``: zero within the budget, linear above it.

    ``rate`` is the mean firing rate of the network's spiking neurons (the fraction of their
    outputs that are spikes), recorded with its graph during the training forward
    (:class:`~basicsr_snn.analysis.FiringRateMonitor` with ``keep_graph=True``). Its gradient
    flows through the neurons' surrogate functions and lowers the rates while they exceed the
    target. Fewer spikes mean fewer synaptic operations: the compute energy of the spike-fed
    layers is proportional to their input rates.

    Args:
        target (float): the budget, a rate in [0, 1]. Default: 0.1.
        loss_weight (float): factor of the penalty, >= 0. Default: 1e-2.

    Shapes: ``rate`` a scalar tensor; returns a scalar.
    """

    def __init__(self, target: float = 0.1, loss_weight: float = 1e-2):
        super().__init__()
        check_number('target', target, minimum=0, maximum=1)
        check_number('loss_weight', loss_weight, minimum=0)
        self.target = float(target)
        self.loss_weight = float(loss_weight)

    def forward(self, rate: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * torch.relu(rate - self.target)

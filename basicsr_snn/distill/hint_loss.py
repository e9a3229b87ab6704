"""What compares a student feature with a teacher feature: any loss in BasicSR's LOSS_REGISTRY.

Optionally both features are first standardised per channel (``normalize: channel``, the
normalisation of mmrazor's PKD), so that an adapter cannot lower the loss by rescaling alone.
"""
from basicsr.losses import build_loss
from basicsr.utils.registry import LOSS_REGISTRY
import torch
from torch import nn

from basicsr_snn.utils.checks import check_choice

DEFAULT_HINT_LOSS = {'type': 'MSELoss', 'loss_weight': 1.0}
NORMALIZATIONS = ('none', 'channel')


def standardize_channels(feature: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(B, C, ...)`` -> each channel at zero mean and unit variance over the batch and positions."""
    dims = [0] + list(range(2, feature.ndim))
    mean = feature.mean(dim=dims, keepdim=True)
    std = feature.var(dim=dims, keepdim=True, unbiased=False).add(eps).sqrt()
    return (feature - mean) / std


class HintComparison(nn.Module):
    """``loss(norm(student), norm(teacher))``, with ``norm`` the identity or :func:`standardize_channels`.

    Args:
        loss (nn.Module): A loss called as ``loss(pred, target)``.
        normalize (str): ``'none'`` or ``'channel'``. Default: ``'none'``.
    """

    def __init__(self, loss: nn.Module, normalize: str = 'none'):
        super().__init__()
        self.loss = loss
        self.normalize = check_choice('normalize', normalize, NORMALIZATIONS)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.normalize == 'channel':
            student, teacher = standardize_channels(student), standardize_channels(teacher)
        return self.loss(student, teacher)


def check_loss_type(loss_opt: dict) -> str:
    """The ``type`` of ``loss_opt``, which must be a registered loss."""
    loss_type = loss_opt.get('type') if isinstance(loss_opt, dict) else None
    if loss_type not in LOSS_REGISTRY:
        raise ValueError(f'type must name a registered loss, got {loss_type!r}; '
                         f'registered: {sorted(LOSS_REGISTRY.keys())}')
    return loss_type


def build_comparison_loss(loss_opt: dict | None, default: dict = DEFAULT_HINT_LOSS) -> nn.Module:
    """Build a registered BasicSR loss (``MSELoss``, ``L1Loss``, ``CharbonnierLoss``, ``FFTLoss`` ...).

    Args:
        loss_opt (dict | None): ``{type: ..., <the loss's keyword arguments>}``; None: ``default``.
        default (dict): Options used when ``loss_opt`` is None.

    Returns:
        nn.Module: called as ``loss(pred, target)``.
    """
    loss_opt = dict(default if loss_opt is None else loss_opt)
    loss_type = check_loss_type(loss_opt)
    try:
        return build_loss(loss_opt)
    except TypeError as error:
        raise ValueError(f'cannot build {loss_type}: {error}') from error

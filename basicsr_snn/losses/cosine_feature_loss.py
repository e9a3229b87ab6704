"""Cosine distance between feature maps: a hint loss blind to the features' scale."""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F


@LOSS_REGISTRY.register()
class CosineFeatureLoss(nn.Module):
    """``loss_weight * mean(1 - cos(pred[b, :, y, x], target[b, :, y, x]))`` over samples and positions.

    Each position's channel vector is compared by direction only, so multiplying a feature map by
    a positive constant changes nothing; with ``normalize: channel`` on the hint (per-channel
    standardisation first) the loss is also blind to per-channel scales and offsets. Values lie in
    ``[0, 2]``: 0 for aligned vectors, 1 for orthogonal ones.

    Args:
        loss_weight (float): Factor applied to the loss. Default: 1.0.
        eps (float): Guards the division for all-zero vectors. Default: 1e-8.

    Shapes: ``pred`` and ``target`` ``(B, C, ...)``, equal; returns a scalar.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-8):
        super().__init__()
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f'CosineFeatureLoss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ')
        return self.loss_weight * (1 - F.cosine_similarity(pred, target, dim=1, eps=self.eps)).mean()

"""Frequency-domain L1 loss: the FFT term of the paper's task loss (L1 + 0.1 * FFT)."""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F

REDUCTIONS = ('none', 'mean', 'sum')


@LOSS_REGISTRY.register()
class FFTLoss(nn.Module):
    """L1 distance between the 2-D Fourier spectra of a prediction and its target.

    Each image ``(N, C, H, W)`` is transformed over its last two dimensions; the real and
    imaginary parts of the spectrum are stacked into a trailing axis of size 2 and compared
    with an L1 distance. The spectra use torch's default ``'backward'`` normalisation (no
    scaling), so the value grows with the image size.

    Use it next to ``pixel_opt`` through ``train.fft_opt`` of :class:`SNNModel` (the paper's
    task loss)::

        pixel_opt: {type: L1Loss, loss_weight: 1.0}
        fft_opt: {type: FFTLoss, loss_weight: 0.1}

    Args:
        loss_weight (float): Factor applied to the loss. Default: 1.0.
        reduction (str): ``'none'`` (element-wise, shape ``(N, C, H, W', 2)``), ``'mean'`` or
            ``'sum'``. Default: ``'mean'``.
        onesided (bool): Compare the half spectrum of ``torch.fft.rfft2`` (``W' = W // 2 + 1``),
            which holds all the information of a real image, or the full spectrum of
            ``torch.fft.fft2`` (``W' = W``). The mean differs between the two because the
            full spectrum repeats most frequencies. Default: True.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', onesided: bool = True):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f'FFTLoss reduction must be one of {REDUCTIONS}, got {reduction!r}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.transform = torch.fft.rfft2 if onesided else torch.fft.fft2

    def spectrum(self, x):
        """``(N, C, H, W)`` -> real and imaginary parts ``(N, C, H, W', 2)``."""
        return torch.view_as_real(self.transform(x, dim=(-2, -1)))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred (Tensor): ``(N, C, H, W)`` restored images.
            target (Tensor): ``(N, C, H, W)`` ground truth.
        """
        if pred.shape != target.shape:
            raise ValueError(f'FFTLoss needs pred and target of the same shape, got {tuple(pred.shape)} '
                             f'and {tuple(target.shape)}')
        # FFTs of half-precision tensors need power-of-two sizes; the loss is cheap in float32.
        distance = F.l1_loss(self.spectrum(pred.float()), self.spectrum(target.float()), reduction=self.reduction)
        return self.loss_weight * distance

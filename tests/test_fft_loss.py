"""FFTLoss: values on inputs with known spectra, options, gradients, registry."""
import numpy as np
import pytest
import torch

from basicsr_snn.losses.fft_loss import FFTLoss  # imports basicsr_snn first: it fixes basicsr's imports


def test_constant_image_has_only_a_dc_component():
    # a 4x4 image of ones: DC = 16, every other frequency 0
    pred, target = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    # half spectrum: 4 x 3 complex values = 24 reals, one of them 16
    assert FFTLoss()(pred, target).item() == pytest.approx(16 / 24)
    # full spectrum: 4 x 4 complex values = 32 reals
    assert FFTLoss(onesided=False)(pred, target).item() == pytest.approx(16 / 32)
    assert FFTLoss(loss_weight=0.1, reduction='sum')(pred, target).item() == pytest.approx(1.6)
    assert FFTLoss(reduction='none')(pred, target).shape == (1, 1, 4, 3, 2)


def test_impulse_has_a_flat_spectrum():
    impulse = torch.zeros(1, 1, 4, 4)
    impulse[..., 0, 0] = 1
    # every frequency of a unit impulse is 1 + 0j: |1 - 0| on each real part, 0 on each imaginary part
    assert FFTLoss()(impulse, torch.zeros_like(impulse)).item() == pytest.approx(0.5)


def test_matches_numpy_spectrum_distance():
    generator = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 6, 5, generator=generator), torch.rand(2, 3, 6, 5, generator=generator)
    difference = np.fft.fft2(pred.numpy()) - np.fft.fft2(target.numpy())
    expected = (np.abs(difference.real) + np.abs(difference.imag)).mean() / 2
    assert FFTLoss(onesided=False)(pred, target).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_reaches_the_prediction():
    pred = torch.rand(1, 3, 8, 8, requires_grad=True)
    FFTLoss()(pred, torch.rand(1, 3, 8, 8)).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_registered_and_built_from_options():
    from basicsr.losses import build_loss
    loss = build_loss({'type': 'FFTLoss', 'loss_weight': 0.1})
    assert isinstance(loss, FFTLoss) and loss.loss_weight == 0.1


def test_bad_input_raises():
    with pytest.raises(ValueError, match='reduction must be one of'):
        FFTLoss(reduction='avg')
    with pytest.raises(ValueError, match=r'same shape.*\(1, 1, 4, 4\).*\(1, 1, 4, 5\)'):
        FFTLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))

"""Batch-norm statistics for untrained networks, so that their firing rates mean something."""
import torch
from spikingjelly.activation_based import functional


def calibrate_batchnorm(model: torch.nn.Module, images: torch.Tensor) -> None:
    """Replace every batch-norm layer's running statistics by those of ``images``.

    A freshly initialised network evaluates with mean 0 / variance 1 statistics, which leaves
    most spiking neurons silent; statistics measured on real images (cumulative average, one
    image per forward, weights untouched) give rates closer to a trained network's. The model
    is left in eval mode.

    Args:
        model (nn.Module): Network mapping ``(1, C, H, W)`` images to its output.
        images (Tensor): ``(N, C, H, W)`` images.
    """
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        for image in images:
            functional.reset_net(model)
            model(image[None])
    functional.reset_net(model)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()

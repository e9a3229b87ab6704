"""Every PSNR and SSIM of the project: one pass of a restoring function over a validation loader.

The training run's validation (:meth:`~basicsr_snn.models.snn_model.SNNModel.nondist_validation`), the teacher's
PSNR of a distillation run, the scores of the gap study and of the Pareto sweep, and the demo's labels all come
from :func:`evaluate` / :func:`score_image`: BasicSR's metric functions (``val.metrics`` entries) on 8-bit images,
as BasicSR's validation computes them, with two rules of this project:

* a metric that does not apply to an image (no ground truth; SSIM's 11x11 window on a smaller image, less the
  cropped border) leaves that image out of its mean, and the image is named;
* one output that is not finite makes every mean ``nan``, so that a broken network never scores.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from os import path as osp

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import tensor2img
from tqdm import tqdm

SSIM_METRICS = ('calculate_ssim', 'calculate_ssim_pt')
SSIM_WINDOW = 11
#: the study's and the sweep's metrics: PSNR and SSIM of the whole image (no border crop, all channels)
WHOLE_IMAGE_METRICS = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
                       'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False}}


@dataclass
class Evaluation:
    """The means of one pass (``nan``: no image applied, or an output was not finite) and what was left out."""
    means: dict[str, float]
    images: int
    left_out: dict[str, list[str]] = field(default_factory=dict)
    nonfinite_outputs: int = 0


def metric_applies(metric_opt: dict, image: np.ndarray, clean: np.ndarray | None) -> bool:
    """False without a clean image, and for SSIM on an image whose sides, less the cropped border, are under its
    11x11 window."""
    if clean is None:
        return False
    if metric_opt.get('type') not in SSIM_METRICS:
        return True
    return min(image.shape[:2]) - 2 * metric_opt.get('crop_border', 0) >= SSIM_WINDOW


def score_image(restored: np.ndarray, clean: np.ndarray | None, metrics: dict) -> dict[str, float]:
    """``{metric name: value}`` of the metrics (``val.metrics`` entries) that apply to one 8-bit image."""
    return {name: float(calculate_metric({'img': restored, 'img2': clean}, metric_opt))
            for name, metric_opt in metrics.items() if metric_applies(metric_opt, restored, clean)}


def evaluate(restore: Callable[[dict], torch.Tensor], loader, metrics: dict,
             on_image: Callable[[str, np.ndarray], None] | None = None, progress_bar: str | None = None) -> Evaluation:
    """Score ``restore`` on every item of ``loader``.

    Args:
        restore: ``restore(data) -> output``: the restored image of a loader item (batch size 1), ``(1, C, H, W)``
            in [0, 1].
        loader (DataLoader): Items with ``lq`` and, to be scored, ``gt``; ``lq_path`` names the image.
        metrics (dict): ``{name: metric options}`` as in ``val.metrics`` (e.g. :data:`WHOLE_IMAGE_METRICS`).
        on_image: Called with each image's name and restored 8-bit image (e.g. to save it).
        progress_bar (str | None): Show a bar over the images with this title.
    """
    values = {name: [] for name in metrics}
    left_out = {name: [] for name in metrics}
    nonfinite, images = 0, 0
    bar = tqdm(total=len(loader), unit='image', desc=progress_bar) if progress_bar else None
    for index, data in enumerate(loader):
        paths = data.get('lq_path') or data.get('gt_path')
        name = osp.splitext(osp.basename(paths[0]))[0] if paths else str(index)
        output = restore(data)
        nonfinite += not bool(torch.isfinite(output).all())
        restored = tensor2img([output.detach().cpu()])
        clean = tensor2img([data['gt']]) if 'gt' in data else None
        scores = score_image(restored, clean, metrics)
        for metric in metrics:
            if metric in scores:
                values[metric].append(scores[metric])
            else:
                left_out[metric].append(name)
        if on_image is not None:
            on_image(name, restored)
        images += 1
        if bar is not None:
            bar.update(1)
            bar.set_description(f'Test {name}')
    if bar is not None:
        bar.close()
    means = {name: float(np.mean(found)) if found and not nonfinite else math.nan for name, found in values.items()}
    return Evaluation(means, images, {name: names for name, names in left_out.items() if names}, nonfinite)


def restore_with(model) -> Callable[[dict], torch.Tensor]:
    """``restore`` of a BasicSR model (``feed_data`` then ``test``: its EMA network if any, as BasicSR validates)."""

    def restore(data):
        model.feed_data(data)
        model.test()
        return model.output

    return restore

"""basicsr_snn.evaluation: the one function behind every PSNR and SSIM of the project."""
import math

import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img

from basicsr_snn.evaluation import WHOLE_IMAGE_METRICS, evaluate, score_image


def items(count=3, size=16, with_gt=True):
    generator = torch.Generator().manual_seed(0)
    for index in range(count):
        gt = torch.rand(1, 1, size, size, generator=generator)
        lq = (gt + 0.1 * torch.randn(gt.shape, generator=generator)).clamp(0, 1)
        item = {'lq': lq, 'lq_path': [f'/data/image{index}.png']}
        if with_gt:
            item['gt'] = gt
        yield item


def test_means_are_basicsr_metrics_of_the_8_bit_images_and_images_are_named():
    loader = list(items())
    seen = []
    result = evaluate(lambda data: data['lq'], loader, WHOLE_IMAGE_METRICS, on_image=lambda name, _: seen.append(name))
    restored = [(tensor2img([data['lq']]), tensor2img([data['gt']])) for data in loader]
    assert result.means['psnr'] == pytest.approx(np.mean([calculate_psnr(a, b, 0) for a, b in restored]))
    assert result.means['ssim'] == pytest.approx(np.mean([calculate_ssim(a, b, 0) for a, b in restored]))
    assert result.images == 3 and not result.left_out and seen == ['image0', 'image1', 'image2']


def test_a_metric_that_does_not_apply_leaves_the_image_out_and_names_it():
    loader = list(items(count=1, size=8)) + list(items(count=2, size=16))[1:]
    result = evaluate(lambda data: data['lq'], loader, WHOLE_IMAGE_METRICS)
    assert result.left_out == {'ssim': ['image0']}  # 8 x 8 is under SSIM's 11 x 11 window
    assert math.isfinite(result.means['ssim']) and math.isfinite(result.means['psnr'])
    without_truth = evaluate(lambda data: data['lq'], list(items(with_gt=False)), WHOLE_IMAGE_METRICS)
    assert math.isnan(without_truth.means['psnr']) and len(without_truth.left_out['psnr']) == 3


def test_one_non_finite_output_makes_every_mean_nan():
    def broken_second(data):
        return data['lq'] * float('nan') if data['lq_path'][0].endswith('image1.png') else data['lq']

    result = evaluate(broken_second, list(items()), WHOLE_IMAGE_METRICS)
    assert result.nonfinite_outputs == 1 and all(math.isnan(mean) for mean in result.means.values())


def test_score_image_of_one_pair():
    clean = np.full((12, 12), 100, np.uint8)
    assert score_image(clean + 1, clean, {'psnr': WHOLE_IMAGE_METRICS['psnr']}) == {
        'psnr': pytest.approx(10 * math.log10(255 ** 2))}
    assert score_image(clean, None, WHOLE_IMAGE_METRICS) == {}

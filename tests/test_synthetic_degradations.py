"""Synthetic rain and haze: determinism, range, and the physics each one claims."""
import numpy as np
import pytest
import torch

import basicsr_snn  # noqa: F401  (registers the dataset)
from basicsr.utils.registry import DATASET_REGISTRY
from basicsr_snn.data.synthetic_degradations import HAZE_BETA, SYNTHETIC_DEGRADATIONS, synthetic_haze, synthetic_rain
from test_gaussian_noise_dataset import IMAGE_SHAPES, write_images

SyntheticDegradationDataset = DATASET_REGISTRY.get('SyntheticDegradationDataset')


def clean_image(seed, shape=(48, 40, 3)):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize('degrade', SYNTHETIC_DEGRADATIONS.values(), ids=SYNTHETIC_DEGRADATIONS.keys())
@pytest.mark.parametrize('channels', [1, 3])
def test_deterministic_for_a_seed_and_in_unit_range(degrade, channels):
    image = clean_image(0, (48, 40, channels))
    first, again = (degrade(image, np.random.default_rng(7)) for _ in range(2))
    other = degrade(image, np.random.default_rng(8))
    assert first.shape == image.shape and first.dtype == np.float32
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    for extreme in (np.zeros_like(image), np.ones_like(image)):
        degraded = degrade(extreme, np.random.default_rng(7))
        assert degraded.min() >= 0. and degraded.max() <= 1.
    assert first.min() >= 0. and first.max() <= 1.


def test_rain_adds_the_same_sparse_white_streaks_to_any_image():
    dark, light = clean_image(1) * 0.5, clean_image(2) * 0.5 + 0.2
    rainy_dark, rainy_light = (synthetic_rain(image, np.random.default_rng(3)) for image in (dark, light))
    assert (rainy_dark >= dark - 1e-6).all()  # the screen blend only brightens
    # Screen blend I = 1 - (1 - J)(1 - S): the streak layer S = (I - J) / (1 - J) is the image's own.
    streaks_dark, streaks_light = (rainy_dark - dark) / (1 - dark), (rainy_light - light) / (1 - light)
    np.testing.assert_allclose(streaks_dark, streaks_light, atol=1e-5)
    np.testing.assert_allclose(streaks_dark[..., 0], streaks_dark[..., 2], atol=1e-5)  # white: every channel alike
    streaked = (streaks_dark[..., 0] > 0.05).mean()
    assert 0.01 < streaked < 0.4


def test_haze_follows_the_scattering_model_with_depth_growing_upwards():
    first, second = clean_image(4), clean_image(5)
    hazy_first, hazy_second = (synthetic_haze(image, np.random.default_rng(9)) for image in (first, second))
    # I = J t + A (1 - t) with the same t and A for both images: t = (I1 - I2) / (J1 - J2).
    differs = np.abs(first - second) > 0.2
    transmission = (hazy_first - hazy_second)[differs] / (first - second)[differs]
    assert transmission.min() >= np.exp(-HAZE_BETA[1]) - 1e-4 and transmission.max() <= 1. + 1e-4
    # A black scene shows the airlight A (1 - t): the far top is hazier than the near bottom.
    veil = synthetic_haze(np.zeros((48, 40, 3), np.float32), np.random.default_rng(9))
    assert veil[:8].mean() > veil[-8:].mean() + 0.1


def make_dataset(folder, **options):
    opt = {'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'}, 'phase': 'val',
           'degradation': 'synthetic-rain', 'name': 'rainy'}
    return SyntheticDegradationDataset({**opt, **options})


@pytest.mark.parametrize('degradation', SYNTHETIC_DEGRADATIONS)
def test_dataset_validation_inputs_repeat_and_are_labelled(tmp_path, degradation):
    folder = write_images(tmp_path / 'clean', IMAGE_SHAPES)
    torch.manual_seed(0)
    first = [item['lq'] for item in make_dataset(folder, degradation=degradation)]
    torch.manual_seed(1)
    again = list(make_dataset(folder, degradation=degradation))
    other_seed = make_dataset(folder, degradation=degradation, degradation_seed=1)[0]['lq']
    for image, item in zip(first, again):
        assert torch.equal(image, item['lq']) and item['degradation'] == degradation
        assert 0. <= item['lq'].min() and item['lq'].max() <= 1. and not torch.equal(item['lq'], item['gt'])
    assert not torch.equal(first[0], other_seed)


def test_dataset_train_crops_are_degraded(tmp_path):
    folder = write_images(tmp_path / 'clean', IMAGE_SHAPES)
    item = make_dataset(folder, phase='train', gt_size=32, degradation='synthetic-haze')[2]
    assert item['lq'].shape == item['gt'].shape == (3, 32, 32)
    assert item['lq'].mean() > item['gt'].mean() - 0.05  # haze veils towards a bright airlight


@pytest.mark.parametrize('options, message', [
    ({'degradation': 'rain'}, "degradation must be one of ('synthetic-rain', 'synthetic-haze'), got 'rain'"),
    ({'degradation': None}, 'degradation must be one of'),
    ({'sigma': 25}, "['sigma'] are GaussianNoiseDataset options"),
    ({'degradation_seed': 0.5}, 'degradation_seed must be an integer'),
])
def test_dataset_bad_options_are_named(tmp_path, options, message):
    folder = write_images(tmp_path / 'clean', IMAGE_SHAPES)
    with pytest.raises(ValueError, match='datasets.val \\(rainy\\): ') as error:
        make_dataset(folder, **options)
    assert message in str(error.value)


def test_dataset_needs_a_degradation(tmp_path):
    folder = write_images(tmp_path / 'clean', IMAGE_SHAPES)
    with pytest.raises(KeyError, match='needs the option degradation'):
        SyntheticDegradationDataset({'dataroot_gt': str(folder), 'phase': 'val'})

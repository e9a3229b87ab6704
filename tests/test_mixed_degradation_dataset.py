"""MixedDegradationDataset: proportions, labels, determinism, batches of mixed sources, named errors."""
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import basicsr_snn  # noqa: F401  (registers the datasets)
from basicsr.data import build_dataloader
from basicsr.utils import set_random_seed
from basicsr.utils.registry import DATASET_REGISTRY
from basicsr_snn.data.mixed_degradation_dataset import apportion
from test_gaussian_noise_dataset import write_images

MixedDegradationDataset = DATASET_REGISTRY.get('MixedDegradationDataset')
SHAPES = {f'{i:03d}': (40, 40, 3) for i in range(1, 4)}


@pytest.fixture
def sources(tmp_path):
    """Noise at sigma 15 and 50, synthetic haze (each on its own copy of the clean images) and paired rain."""
    def clean(name):
        return str(write_images(tmp_path / name, SHAPES))

    rain = tmp_path / 'rain'
    for folder, prefix in (('input', 'rain'), ('target', 'norain')):
        write_images(rain / folder, {f'{prefix}-{i:03d}': (40, 40, 3) for i in range(1, 3)}, seed=len(prefix))
    return [
        {'name': 'noise15', 'weight': 1, 'type': 'GaussianNoiseDataset', 'dataroot_gt': clean('clean15'), 'sigma': 15},
        {'name': 'noise50', 'weight': 1, 'type': 'GaussianNoiseDataset', 'dataroot_gt': clean('clean50'), 'sigma': 50},
        {'name': 'synthetic-haze', 'weight': 2, 'type': 'SyntheticDegradationDataset',
         'dataroot_gt': clean('clean_haze'), 'degradation': 'synthetic-haze'},
        {'name': 'rain', 'weight': 4, 'type': 'PairedFolderDataset', 'dataroot_gt': str(rain / 'target'),
         'dataroot_lq': str(rain / 'input'), 'io_backend': {'type': 'disk'}},
    ]


def mixed(sources, phase='train', **options):
    opt = {'name': 'allinone', 'phase': phase, 'sources': sources, 'gt_size': 24, 'use_hflip': True,
           'use_rot': True, **options}
    return MixedDegradationDataset(opt)


def source_folder(source):
    return Path(source['dataroot_lq'] if 'dataroot_lq' in source else source['dataroot_gt'])


def test_apportion_gives_exact_shares():
    assert apportion(800, [1, 1, 2, 4]).tolist() == [100, 100, 200, 400]
    assert apportion(10, [1, 1, 1]).tolist() == [4, 3, 3]  # one left over, to the first of the ties
    assert apportion(7, [0.5, 0.25, 0.25]).tolist() == [3, 2, 2]  # quotas 3.5, 1.75, 1.75


def test_every_source_in_proportion_to_its_weight_and_labelled(sources):
    set_random_seed(0)
    dataset = mixed(sources, num_samples=400)
    labels = Counter()
    for index in range(len(dataset)):
        sample = dataset[index]
        labels[sample['degradation']] += 1
        source = sources[[s['name'] for s in sources].index(sample['degradation'])]
        assert Path(sample['lq_path']).parent == source_folder(source)
        assert sample['lq'].shape == sample['gt'].shape == (3, 24, 24)
        if source['type'] == 'GaussianNoiseDataset':
            noise_std = float((sample['lq'] - sample['gt']).std()) * 255
            assert abs(noise_std - source['sigma']) < 0.25 * source['sigma']
    # weights 1 : 1 : 2 : 4 of 400 samples
    assert labels == {'noise15': 50, 'noise50': 50, 'synthetic-haze': 100, 'rain': 200}


def test_default_length_is_the_sum_of_the_sources(sources):
    assert len(mixed(sources)) == 3 + 3 + 3 + 2


def test_training_samples_repeat_for_a_seed(sources):
    def draw(seed):
        set_random_seed(seed)
        dataset = mixed(sources, num_samples=16)
        return [dataset[index] for index in (5, 0, 11, 5)]

    first, again, other = draw(3), draw(3), draw(4)
    for a, b in zip(first, again):
        assert a['degradation'] == b['degradation'] and torch.equal(a['lq'], b['lq'])
    assert any(not torch.equal(a['lq'], b['lq']) for a, b in zip(first, other))


def test_mix_seed_fixes_which_source_serves_each_index(sources):
    def labels(dataset):
        return [dataset.names[source] for source, _ in dataset.index_map]

    assert labels(mixed(sources, mix_seed=1)) == labels(mixed(sources, mix_seed=1))
    assert labels(mixed(sources, mix_seed=1)) != labels(mixed(sources, mix_seed=2))


def test_validation_phase_reads_each_image_of_a_source_equally_often(sources):
    for source in sources:
        source['weight'] = 1
    dataset = mixed(sources, phase='val', num_samples=24)  # 6 samples per source
    read = Counter((sample['degradation'], Path(sample['lq_path']).name) for sample in dataset)
    expected = {(source['name'], path.name): 6 // len(list(source_folder(source).glob('*.png')))
                for source in sources for path in source_folder(source).glob('*.png')}
    assert read == expected  # 3 images read twice, or 2 images three times


def test_mixed_sources_collate_into_batches(sources):
    set_random_seed(0)
    opt = {'name': 'allinone', 'phase': 'train', 'sources': sources, 'gt_size': 24, 'use_hflip': False,
           'use_rot': False, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 8, 'dataset_enlarge_ratio': 1}
    loader = build_dataloader(MixedDegradationDataset(opt), opt, num_gpu=0, dist=False, sampler=None)
    batch = next(iter(loader))
    assert batch['lq'].shape == (8, 3, 24, 24) and len(batch['degradation']) == 8


@pytest.mark.parametrize('change, error, message', [
    (lambda s: s[1].update(type='NoSuchDataset'), ValueError, r'datasets\.train\.sources\[1\]\.type must be one of'),
    (lambda s: s[2].pop('weight'), KeyError, r'datasets\.train\.sources\[2\]\.weight is missing'),
    (lambda s: s[0].update(weight=0), ValueError, r'datasets\.train\.sources\[0\]\.weight must be a number > 0'),
    (lambda s: s[3].update(name='noise15'), ValueError, r'datasets\.train\.sources\[3\]\.name must be a non-empty'),
    (lambda s: s[1].pop('sigma'), ValueError, r"datasets\.train\.sources\[1\] \(GaussianNoiseDataset 'noise50'\): "
                                              r'.*Noise level'),
    (lambda s: s[3].pop('dataroot_lq'), KeyError, r"datasets\.train\.sources\[3\] \(PairedFolderDataset 'rain'\): "
                                                  r'dataroot_lq'),
    (lambda s: s[2].update(type='MixedDegradationDataset'), ValueError, r'sources\[2\]\.type: a MixedDegradation'),
])
def test_bad_source_option_names_its_key(sources, change, error, message):
    change(sources)
    with pytest.raises(error, match=message):
        mixed(sources)


def test_bad_mix_options_are_named(sources):
    with pytest.raises(ValueError, match=r'datasets\.train\.sources must be a non-empty list'):
        mixed([])
    # quotas 0.5, 0.5, 1, 2: the one left over goes to noise15
    with pytest.raises(ValueError, match=r"datasets\.train\.num_samples: 4 samples leave source\(s\) \['noise50'\]"):
        mixed(sources, num_samples=4)
    with pytest.raises(ValueError, match=r'datasets\.train\.mix_seed must be an integer'):
        mixed(sources, mix_seed='a')


def test_sources_keep_their_own_crop_options(sources, tmp_path):
    cv2.imwrite(str(tmp_path / 'clean15' / '004.png'), np.zeros((40, 40, 3), np.uint8))
    sources[0]['gt_size'] = 16
    dataset = mixed(sources)
    assert dataset.sources[0].gt_size == 16 and dataset.sources[1].gt_size == 24

"""Paired derain folders whose names differ (rain-XXX / norain-XXX): PairedFolderDataset and filename_tmpl."""
import random

import cv2
import numpy as np
import pytest
import torch

import basicsr_snn  # noqa: F401  (registers the dataset)
from basicsr.utils.registry import DATASET_REGISTRY
from basicsr_snn.data.paths import shared_datasets_root

PairedFolderDataset = DATASET_REGISTRY.get('PairedFolderDataset')


def write_pairs(root, lq_names, gt_names):
    """Image i of each folder is the same random texture (seeded by i), so a pair is right when the images match.

    Returns a fresh options dict: PairedImageDataset pops 'type' from its io_backend dict.
    """
    for folder, names in (('input', lq_names), ('target', gt_names)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(names):
            texture = np.random.default_rng(index).integers(0, 256, (20, 24, 3), dtype=np.uint8)
            cv2.imwrite(str(root / folder / name), texture)
    return {'dataroot_lq': str(root / 'input'), 'dataroot_gt': str(root / 'target'),
            'io_backend': {'type': 'disk'}, 'phase': 'val'}


def test_pairs_by_trailing_number(tmp_path):
    opt = write_pairs(tmp_path, ['rain-002.png', 'rain-001.png', 'rain-10.png'],
                      ['norain-002.png', 'norain-001.png', 'norain-010.png'])
    dataset = PairedFolderDataset(opt)
    assert [(p['lq_path'].rsplit('/', 1)[1], p['gt_path'].rsplit('/', 1)[1]) for p in dataset.paths] == [
        ('rain-001.png', 'norain-001.png'), ('rain-002.png', 'norain-002.png'), ('rain-10.png', 'norain-010.png')]
    for item in dataset:
        assert torch.equal(item['lq'], item['gt'])


def test_train_phase_crops_both_alike(tmp_path):
    opt = write_pairs(tmp_path, ['rain-1.png', 'rain-2.png'], ['norain-1.png', 'norain-2.png'])
    dataset = PairedFolderDataset({**opt, 'phase': 'train', 'gt_size': 16, 'use_hflip': True, 'use_rot': True})
    random.seed(0)
    crops = [dataset[1] for _ in range(8)]
    for item in crops:
        assert item['lq'].shape == item['gt'].shape == (3, 16, 16)
        assert torch.equal(item['lq'], item['gt'])
    # the crops (or flips) differ between draws: a crop at a fixed place would not test the alignment
    assert len({item['gt'].numpy().tobytes() for item in crops}) > 1


@pytest.mark.parametrize('lq_names, gt_names, message', [
    (['rain-001.png', 'rain-002.png'], ['norain-001.png', 'norain-003.png'],
     r"in .*input: \['rain-002.png'\]; in .*target: \['norain-003.png'\]"),
    (['rain-001.png', 'rain-a.png'], ['norain-001.png'], r'dataroot_lq: rain-a.png does not match'),
    (['rain-001.png', 'rain-1.png'], ['norain-001.png'], r'rain-001.png and rain-1.png have the same pair key 1'),
])
def test_unpaired_files_are_named(tmp_path, lq_names, gt_names, message):
    with pytest.raises(ValueError, match=message):
        PairedFolderDataset(write_pairs(tmp_path, lq_names, gt_names))


def test_bad_options_are_named(tmp_path):
    opt = write_pairs(tmp_path, ['rain-001.png'], ['norain-001.png'])
    with pytest.raises(ValueError, match='pair_key_regex'):
        PairedFolderDataset({**opt, 'pair_key_regex': '(unclosed'})
    with pytest.raises(ValueError, match="io_backend.type 'disk' only"):
        PairedFolderDataset({**opt, 'io_backend': {'type': 'lmdb'}})
    with pytest.raises(FileNotFoundError, match='dataroot_lq'):
        PairedFolderDataset({**opt, 'dataroot_lq': str(tmp_path / 'nowhere')})


def test_real_rain12_pairs_all_twelve():
    root = shared_datasets_root() / 'Rain12'
    if not root.is_dir():
        pytest.skip(f'Rain12 not found at {root} (set BASICSR_SNN_DATASETS)')
    dataset = PairedFolderDataset({'dataroot_lq': str(root / 'input'), 'dataroot_gt': str(root / 'target'),
                                   'io_backend': {'type': 'disk'}, 'phase': 'val'})
    assert len(dataset) == 12
    assert all(p['gt_path'].endswith('norain-' + p['lq_path'][-7:]) for p in dataset.paths)

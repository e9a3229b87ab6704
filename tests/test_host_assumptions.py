"""What the plugin assumes of its host stack (BasicSR 1.4.2, torchvision, spikingjelly), checked.

These tests exercise BasicSR's own code, not the plugin's: if one fails after an upgrade, a fix in
``basicsr_snn/_compat.py`` or a workaround elsewhere may have become unnecessary, or wrong.
"""
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch

import basicsr_snn  # noqa: F401  (its import shims make ``import basicsr`` work)
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.misc import check_resume
from basicsr.utils.registry import ARCH_REGISTRY
from test_paired_folder_dataset import write_pairs


def test_import_fixes_basicsr():
    import basicsr
    from basicsr.data.degradations import rgb_to_grayscale  # the module torchvision removed
    assert basicsr.__version__ == '1.4.2'
    assert rgb_to_grayscale(torch.ones(3, 2, 2)).shape == (1, 2, 2)


class DegradationsInWorker(torch.utils.data.Dataset):
    """Imports basicsr's degradations (the module that needs the torchvision fix) in the worker."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        from basicsr.data.degradations import rgb_to_grayscale
        return rgb_to_grayscale(torch.full((3, 1, 1), float(index)))


def test_import_in_spawned_dataloader_worker():
    loader = torch.utils.data.DataLoader(DegradationsInWorker(), num_workers=1, multiprocessing_context='spawn')
    assert [round(float(x), 3) for x in loader] == [0.0, 1.0]


def test_check_resume_rewrites_every_network_path_unless_ignored():
    """Why models declare ``frozen_networks``: BasicSR would look for a ``net_t_<iter>.pth``."""
    paths = {'resume_state': 'x.state', 'models': 'm', 'pretrain_network_t': 'teacher.pth'}
    opt = {'network_g': {}, 'network_t': {}, 'path': paths}
    check_resume(opt, 10)
    assert opt['path']['pretrain_network_t'] == str(Path('m') / 'net_t_10.pth')
    opt['path'].update(pretrain_network_t='teacher.pth', ignore_resume_networks=['network_t'])
    check_resume(opt, 10)
    assert opt['path']['pretrain_network_t'] == 'teacher.pth'


def mixed_size_folder(root):
    """A small first image and an incompressible large one."""
    folder = root / 'images'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a_small.png'), np.full((16, 16, 3), 90, np.uint8))
    cv2.imwrite(str(folder / 'd_large.png'), np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))
    return folder


def test_basicsr_first_image_estimate_is_too_small_for_this_folder(tmp_path):
    """make_lmdb_from_imgs sizes the LMDB from the first image: the trap make_lmdb avoids."""
    mixed_folder = mixed_size_folder(tmp_path)
    names = sorted(p.name for p in mixed_folder.iterdir())
    with pytest.raises(lmdb.MapFullError):
        make_lmdb_from_imgs(str(mixed_folder), str(tmp_path / 'basicsr.lmdb'), names,
                            [Path(n).stem for n in names])


def test_filename_tmpl_indexing_pairs_fixed_width_names(tmp_path):
    """BasicSR's own dataset can read the Rain12 layout: lq name = tmpl.format(gt name without extension)."""
    lq_names, gt_names = ['rain-001.png', 'rain-002.png'], ['norain-001.png', 'norain-002.png']
    opt = write_pairs(tmp_path, lq_names, gt_names)
    dataset = PairedImageDataset({**opt, 'scale': 1, 'filename_tmpl': 'rain-{0[7]}{0[8]}{0[9]}'})
    for item in dataset:
        assert item['lq_path'].endswith(item['gt_path'][-7:]) and torch.equal(item['lq'], item['gt'])
    opt = write_pairs(tmp_path, lq_names, gt_names)
    with pytest.raises(AssertionError, match='rain-norain-00[12].png is not in lq_paths'):
        PairedImageDataset({**opt, 'scale': 1, 'filename_tmpl': 'rain-{}'})


def test_basicsr_swinir_for_denoising_works_as_a_teacher():
    model = ARCH_REGISTRY.get('SwinIR')(
        upscale=1,
        img_range=1.,
        upsampler='',
        in_chans=1,
        img_size=16,
        window_size=4,
        embed_dim=12,
        depths=[1],
        num_heads=[2],
        mlp_ratio=2).eval()
    x = torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        assert model(x).shape == x.shape
        # BasicSR 1.4.2's SwinIR does not pad: sides must be multiples of window_size
        with pytest.raises(RuntimeError):
            model(torch.rand(1, 1, 17, 23))


def test_basicsr_ridnet_works_as_a_teacher():
    model = ARCH_REGISTRY.get('RIDNet')(in_channels=3, mid_channels=16, out_channels=3, num_block=1).eval()
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        assert model(x).shape == x.shape

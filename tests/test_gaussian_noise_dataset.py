"""GaussianNoiseDataset: noise statistics, determinism, options and errors."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import basicsr_snn  # noqa: F401  (registers the dataset)
from basicsr.data import build_dataloader
from basicsr.utils import set_random_seed
from basicsr.utils.registry import DATASET_REGISTRY

GaussianNoiseDataset = DATASET_REGISTRY.get('GaussianNoiseDataset')
REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_SHAPES = {'a': (40, 48, 3), 'b': (48, 40, 3), 'c': (64, 64, 3), 'd': (36, 50, 3)}


def write_images(folder, shapes, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, shape in shapes.items():
        cv2.imwrite(str(folder / f'{name}.png'), rng.integers(0, 256, shape, dtype=np.uint8))
    return folder


@pytest.fixture
def image_folder(tmp_path):
    return write_images(tmp_path / 'clean', IMAGE_SHAPES)


def make_dataset(root, **options):
    opt = {'dataroot_gt': str(root), 'io_backend': {'type': 'disk'}, 'phase': 'val', 'sigma': 25}
    opt.update(options)
    return GaussianNoiseDataset(opt)


def items_by_key(dataset):
    return {Path(item['gt_path']).stem: item for item in dataset}


def test_val_noise_is_the_same_across_runs_and_ranks(image_folder, tmp_path):
    set_random_seed(0)
    first_run = items_by_key(make_dataset(image_folder))

    # A second run on two ranks: each rank reads a different subset, listed in another order,
    # with the global RNGs seeded differently (BasicSR seeds manual_seed + rank).
    rank_subsets = [['d', 'b'], ['c', 'a']]
    for rank, subset in enumerate(rank_subsets):
        meta_info = tmp_path / f'meta_rank{rank}.txt'
        meta_info.write_text(''.join(f'{name}.png (1,1,3) 1\n' for name in subset))
        set_random_seed(123 + rank)
        for key, item in items_by_key(make_dataset(image_folder, meta_info_file=str(meta_info))).items():
            assert torch.equal(item['lq'], first_run[key]['lq']), key

    # Different images get different noise.
    noise_a, noise_d = (first_run[key]['lq'] - first_run[key]['gt'] for key in 'ad')
    assert not torch.allclose(noise_a[:, :36, :48], noise_d[:, :36, :48])


def test_val_noise_is_the_same_in_another_process(image_folder):
    """A fresh interpreter with another hash salt and other global seeds gets the same noisy image."""
    script = ('import sys, numpy as np, torch, basicsr_snn; torch.manual_seed(99); np.random.seed(99)\n'
              'from basicsr.utils.registry import DATASET_REGISTRY\n'
              'ds = DATASET_REGISTRY.get("GaussianNoiseDataset")({"dataroot_gt": sys.argv[1], "phase": "test", '
              '"sigma": 25})\n'
              'np.save(sys.argv[2], ds[2]["lq"].numpy())\n')
    out = image_folder.parent / 'other_process.npy'
    env = dict(os.environ, PYTHONHASHSEED='12345', PYTHONPATH=str(REPO_ROOT))
    subprocess.run([sys.executable, '-c', script, str(image_folder), str(out)], check=True, env=env, cwd=REPO_ROOT)
    here = make_dataset(image_folder, phase='test')[2]['lq'].numpy()
    np.testing.assert_array_equal(np.load(out), here)


@pytest.mark.parametrize('sigma', [15, 25, 50])
def test_noise_std_matches_sigma_on_a_flat_image(tmp_path, sigma):
    folder = tmp_path / 'flat'
    folder.mkdir()
    cv2.imwrite(str(folder / 'flat.png'), np.full((512, 512), 128, np.uint8))
    item = make_dataset(folder, sigma=sigma, color='gray')[0]
    noise = (item['lq'] - item['gt']).double() * 255
    assert item['lq'].shape == (1, 512, 512)
    assert item['sigma'] == sigma
    assert abs(noise.std().item() / sigma - 1) < 0.01
    assert abs(noise.mean().item()) < 0.01 * sigma


def test_clip_noisy_keeps_the_input_in_range(tmp_path):
    folder = tmp_path / 'flat'
    folder.mkdir()
    cv2.imwrite(str(folder / 'flat.png'), np.full((64, 64), 250, np.uint8))
    clipped = make_dataset(folder, sigma=50, color='gray', clip_noisy=True)[0]['lq']
    unclipped = make_dataset(folder, sigma=50, color='gray')[0]['lq']
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert unclipped.max() > 1
    torch.testing.assert_close(clipped, unclipped.clamp(0, 1))


def test_train_phase_crops_and_draws_sigma_per_sample(tmp_path):
    folder = tmp_path / 'flat'
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f'flat{index}.png'), np.full((160, 170), 128, np.uint8))
    torch.manual_seed(0)
    blind = make_dataset(folder, phase='train', gt_size=128, sigma=[0, 55], color='gray')
    chosen = make_dataset(folder, phase='train', gt_size=128, sigma=None, sigma_choices=[15, 50],
                          color='gray')
    blind_sigmas = []
    for item in [blind[i % 3] for i in range(12)] + [chosen[i % 3] for i in range(12)]:
        assert item['lq'].shape == item['gt'].shape == (1, 128, 128)
        measured = ((item['lq'] - item['gt']) * 255).std().item()
        assert measured == pytest.approx(item['sigma'], rel=0.03, abs=0.05)
        blind_sigmas.append(item['sigma'])
    assert all(0 <= s <= 55 for s in blind_sigmas[:12]) and len(set(blind_sigmas[:12])) == 12
    assert set(blind_sigmas[12:]) == {15.0, 50.0}


def test_train_crops_and_flips_keep_gt_and_noise_aligned(image_folder):
    # random-texture images: lq minus gt is the noise alone (std sigma) only where both share crop and flip;
    # a misaligned pixel differs by about 100 gray levels
    set_random_seed(3)
    sigma = 5
    dataset = make_dataset(image_folder, phase='train', gt_size=32, sigma=sigma)
    for index in range(len(dataset)):
        item = dataset[index]
        assert item['gt'].shape == item['lq'].shape == (3, 32, 32)
        noise = (item['lq'] - item['gt']) * 255
        assert noise.std().item() == pytest.approx(sigma, rel=0.1)
        assert noise.abs().max().item() < 6 * sigma


def train_batches(dataset, seed, epochs=2):
    """Noise fields a BasicSR run would draw: set_random_seed, then its seeded DataLoader."""
    set_random_seed(seed)
    opt = {'phase': 'train', 'batch_size_per_gpu': 1, 'num_worker_per_gpu': 2}
    loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=seed)
    return [batch['lq'] - batch['gt'] for _ in range(epochs) for batch in loader]


def test_train_noise_repeats_with_the_seed_and_differs_between_workers(tmp_path):
    # Four copies of one image, cropped whole and never flipped: only the noise tells samples apart.
    folder = tmp_path / 'same'
    folder.mkdir()
    for index in range(4):
        cv2.imwrite(str(folder / f'copy{index}.png'), np.full((24, 24), 100, np.uint8))
    dataset = make_dataset(folder, phase='train', gt_size=24, sigma=25, color='gray', use_hflip=False,
                           use_rot=False)
    first, again, other_seed = train_batches(dataset, 0), train_batches(dataset, 0), train_batches(dataset, 1)
    assert len(first) == 8
    for noise, repeated in zip(first, again):
        assert torch.equal(noise, repeated)
    # Every sample of every worker and epoch gets its own noise.
    for i in range(len(first)):
        for j in range(i):
            assert not torch.equal(first[i], first[j])
    assert not any(torch.equal(a, b) for a, b in zip(first, other_seed))


def test_gray_and_rgb_channels(image_folder):
    bgr = cv2.imread(str(image_folder / 'a.png'))
    rgb_item = make_dataset(image_folder, sigma=0)[0]
    gray_item = make_dataset(image_folder, sigma=0, color='gray')[0]
    expected_rgb = torch.from_numpy(bgr[..., ::-1].transpose(2, 0, 1) / 255.).float()
    expected_gray = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[None] / 255.).float()
    torch.testing.assert_close(rgb_item['gt'], expected_rgb)
    torch.testing.assert_close(gray_item['gt'], expected_gray)
    assert rgb_item['gt_path'] == str(image_folder / 'a.png')


@pytest.mark.parametrize('options, option_name', [
    ({'color': 'y'}, 'color'),
    ({'sigma': -1}, 'sigma'),
    ({'sigma': [30, 10]}, 'sigma'),
    ({'sigma': [10, 20, 30]}, 'sigma'),
    ({'sigma': '25'}, 'sigma'),
    ({'sigma': None}, 'sigma_choices'),
    ({'sigma_choices': [15, 25]}, 'sigma_choices'),
    ({'sigma': None, 'sigma_choices': []}, 'sigma_choices'),
    ({'io_backend': {'type': 'ceph'}}, 'io_backend.type'),
    ({'phase': 'train'}, 'gt_size'),
    ({'phase': 'train', 'gt_size': 0}, 'gt_size'),
    ({'phase': 'train', 'gt_size': 16, 'use_rot': 'yes'}, 'use_rot'),
    ({'clip_noisy': 1}, 'clip_noisy'),
    ({'noise_seed': 1.5}, 'noise_seed'),
])
def test_bad_option_names_the_option(image_folder, options, option_name):
    with pytest.raises(ValueError, match=option_name.replace('.', r'\.')):
        make_dataset(image_folder, **options)


def test_missing_path_and_empty_folder_are_named(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError, match=f'dataroot_gt: {missing} does not exist'):
        make_dataset(missing)
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('not an image')
    with pytest.raises(FileNotFoundError, match=f'no images .* in {empty}'):
        make_dataset(empty)
    with pytest.raises(KeyError, match='dataroot_gt'):
        GaussianNoiseDataset({'phase': 'val', 'sigma': 25})


def test_unreadable_image_is_named(image_folder):
    (image_folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n this is not image data')
    dataset = make_dataset(image_folder)
    broken_index = [key for key, _ in dataset.items].index('broken')
    with pytest.raises(ValueError, match=f'Cannot decode image {image_folder / "broken.png"}'):
        dataset[broken_index]


def test_meta_info_listing_a_missing_file_is_named(image_folder, tmp_path):
    meta_info = tmp_path / 'meta.txt'
    meta_info.write_text('a.png (40,48,3) 1\nghost.png (8,8,3) 1\n')
    with pytest.raises(FileNotFoundError, match='ghost.png'):
        make_dataset(image_folder, meta_info_file=str(meta_info))


def test_image_smaller_than_gt_size_is_named(image_folder):
    dataset = make_dataset(image_folder, phase='train', gt_size=60)
    with pytest.raises(ValueError, match=r'a\.png is 40x48, smaller than gt_size 60'):
        dataset[0]

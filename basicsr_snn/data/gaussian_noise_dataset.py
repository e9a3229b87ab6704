"""Clean images plus additive white Gaussian noise made on the fly: the denoising dataset."""
import hashlib
import numbers
import random
from os import path as osp
from pathlib import Path

import lmdb
import numpy as np
import torch
from basicsr.data.transforms import augment
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from basicsr_snn.data.image_io import COLOR_MODES, decode_image, list_images
from basicsr_snn.utils.checks import check_bool, check_choice, check_int

IO_BACKENDS = ('disk', 'lmdb')


def image_noise_seed(base_seed, key):
    """Seed of the noise added to one validation/test image.

    It depends on the image's key (its name) and ``base_seed`` only, not on its index, the rank,
    the worker or any global RNG, so the same image gets the same noise everywhere. SHA-256 rather
    than ``hash()``, which Python salts per process.
    """
    digest = hashlib.sha256(f'{base_seed}/{key}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'little')


def read_meta_info_names(meta_info_file):
    """First field of each non-empty line of a BasicSR meta_info file (``name.png (h,w,c) level``)."""
    meta_info_file = Path(meta_info_file)
    if not meta_info_file.is_file():
        raise FileNotFoundError(f'meta_info_file: {meta_info_file} does not exist.')
    names = [line.split()[0] for line in meta_info_file.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f'meta_info_file: {meta_info_file} lists no images.')
    return names


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@DATASET_REGISTRY.register()
class GaussianNoiseDataset(data.Dataset):
    """Clean images (folder, meta_info file or LMDB) with additive white Gaussian noise.

    Sources, as in BasicSR's own datasets:
        1. ``io_backend.type: lmdb``: ``dataroot_gt`` is an LMDB made by ``scripts/make_lmdb.py`` (or
           BasicSR's tools); keys come from ``meta_info_file``, default ``<dataroot_gt>/meta_info.txt``.
        2. ``io_backend.type: disk`` with ``meta_info_file``: the file names listed there, relative
           to ``dataroot_gt``.
        3. ``io_backend.type: disk``: every image directly inside ``dataroot_gt``.
    Samples are sorted by key (the file name without extension, i.e. the LMDB key), so index i is
    the same image in a folder and in the LMDB made from it.

    Noise level, ``sigma`` in 0-255 units, set exactly one of:
        sigma (number | list): a number for a fixed level (``sigma: 25``), or ``[min, max]`` for a
            level drawn uniformly per sample (blind denoising, e.g. ``[0, 55]``).
        sigma_choices (list[number]): levels drawn with equal probability per sample.
    The noisy input is ``gt + sigma / 255 * n``, n ~ N(0, 1) per pixel and channel, in float32.

    Randomness:
        train: crop position, flips and rotations come from Python's ``random`` (BasicSR's
            transforms), the noise level and noise from a per-sample ``numpy`` Generator seeded from
            torch's RNG. BasicSR seeds both per rank (``manual_seed + rank``) and per DataLoader
            worker, and torch draws a fresh worker seed every epoch, so workers, ranks and epochs
            get different noise while a run with the same ``manual_seed`` repeats exactly.
        val / test: no crop or flip; level and noise come from a Generator seeded by
            ``image_noise_seed(noise_seed, key)``: the same image gets the same noisy input on every
            run, rank and worker, whatever order or subset the images are read in.

    Args:
        opt (dict): Options:
            dataroot_gt (str): Folder of clean images or an ``.lmdb`` folder.
            meta_info_file (str, optional): Image list, see above. Default: none.
            io_backend (dict): ``{'type': 'disk'}`` (default) or ``{'type': 'lmdb'}``; other keys go
                to BasicSR's ``FileClient`` (e.g. ``readahead`` for lmdb).
            phase (str): 'train', 'val' or 'test' (BasicSR sets it from the datasets key).
            sigma / sigma_choices: Noise level, see above.
            color (str): 'rgb' (default; 3 channels) or 'gray' (1 channel; color images are converted
                with 0.299 R + 0.587 G + 0.114 B, gray images are read as they are).
            gt_size (int): Square crop size; train phase only, required there.
            use_hflip (bool): Random horizontal flips in training. Default: True.
            use_rot (bool): Random 90-degree rotations and vertical flips in training. Default: True.
            clip_noisy (bool): Clip the noisy input to [0, 1]. Default: False, the protocol of the
                DnCNN, FFDNet and Restormer papers and evaluation scripts (noise added in float,
                never clipped). True matches pipelines that feed noisy images as valid images; it
                does not quantize to 8 bits.
            noise_seed (int): Base seed of validation/test noise. Default: 0.

    Returns (per item):
        dict: 'lq' (Tensor (C, H, W), float32, noisy, RGB order; in [0, 1] only if clip_noisy),
        'gt' (Tensor (C, H, W), float32 in [0, 1]), 'lq_path' and 'gt_path' (the image file, or its
        LMDB key), 'sigma' (float, the level used, 0-255 units).
    """

    def __init__(self, opt: dict):
        super().__init__()
        try:
            self._setup(opt)
        except (ValueError, KeyError, FileNotFoundError, NotADirectoryError) as error:
            message = error.args[0] if error.args else str(error)
            where = f"datasets.{opt.get('phase', 'train')} ({opt.get('name', type(self).__name__)})"
            raise type(error)(f'{where}: {message}') from error

    def _setup(self, opt):
        self.opt = opt
        self.phase = opt.get('phase', 'train')
        self.color = opt.get('color', 'rgb')
        check_choice('color', self.color, COLOR_MODES)
        self._setup_degradation(opt)
        if self.phase == 'train':
            self.gt_size = opt.get('gt_size')
            check_int('gt_size', self.gt_size, 1)
            self.use_hflip = check_bool('use_hflip', opt.get('use_hflip', True))
            self.use_rot = check_bool('use_rot', opt.get('use_rot', True))

        if 'dataroot_gt' not in opt:
            raise KeyError('GaussianNoiseDataset needs the option dataroot_gt (folder of clean images or .lmdb).')
        self.root = Path(opt['dataroot_gt'])
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        backend = self.io_backend_opt.pop('type', 'disk')
        check_choice('io_backend.type', backend, IO_BACKENDS)
        if backend == 'lmdb':
            self.io_backend_opt.update(db_paths=[str(self.root)], client_keys=['gt'])
            self.items = self._lmdb_items(opt.get('meta_info_file'))
        else:
            self.items = self._disk_items(opt.get('meta_info_file'))
        self.backend = backend
        self.file_client = None

    def _setup_degradation(self, opt):
        """Reads the options of the degradation; sets ``eval_seed``, the base seed of val/test inputs."""
        self.sigma_range, self.sigma_choices = self._parse_noise_level(opt)
        self.clip_noisy = check_bool('clip_noisy', opt.get('clip_noisy', False))
        self.eval_seed = check_int('noise_seed', opt.get('noise_seed', 0))

    def _degrade(self, img_gt, rng):
        """(degraded input, extra sample entries) of a clean float32 image, drawn from ``rng``."""
        sigma = self._draw_sigma(rng)
        img_lq = img_gt + rng.standard_normal(img_gt.shape, dtype=np.float32) * np.float32(sigma / 255.)
        if self.clip_noisy:
            img_lq = np.clip(img_lq, 0., 1.)
        return img_lq, {'sigma': sigma}

    @staticmethod
    def _parse_noise_level(opt):
        """Returns ((low, high), None) for a fixed level or a range, (None, choices) for a list."""
        sigma, choices = opt.get('sigma'), opt.get('sigma_choices')
        usage = ("set exactly one of 'sigma' (a number, or [min, max] for blind denoising) "
                 "or 'sigma_choices' (a list of numbers), in 0-255 units")
        if (sigma is None) == (choices is None):
            raise ValueError(f'Noise level: {usage}; got sigma={sigma!r}, sigma_choices={choices!r}.')
        if choices is not None:
            if (not isinstance(choices, (list, tuple)) or not choices
                    or not all(_is_number(c) and c >= 0 for c in choices)):
                raise ValueError(f'sigma_choices must be a non-empty list of numbers >= 0, got {choices!r}.')
            return None, tuple(float(c) for c in choices)
        if _is_number(sigma) and sigma >= 0:
            return (float(sigma), float(sigma)), None
        if (isinstance(sigma, (list, tuple)) and len(sigma) == 2 and all(_is_number(s) for s in sigma)
                and 0 <= sigma[0] <= sigma[1]):
            return (float(sigma[0]), float(sigma[1])), None
        raise ValueError(f'sigma must be a number >= 0 or a range [min, max] with 0 <= min <= max, got {sigma!r}.')

    def _disk_items(self, meta_info_file):
        """(key, path) pairs; the key is the name relative to dataroot_gt without its extension."""
        if meta_info_file is None:
            paths = list_images(self.root, 'dataroot_gt')
        else:
            if not self.root.is_dir():
                raise FileNotFoundError(f'dataroot_gt: {self.root} does not exist or is not a folder.')
            paths = [self.root / name for name in read_meta_info_names(meta_info_file)]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(f'{len(missing)} image(s) listed in meta_info_file {meta_info_file} '
                                        f'are missing, e.g. {missing[:3]}.')
        items = [(osp.splitext(str(p.relative_to(self.root)))[0], str(p)) for p in paths]
        return sorted(items)

    def _lmdb_items(self, meta_info_file):
        """(key, key) pairs, after checking that the LMDB holds every listed key."""
        if not (self.root / 'data.mdb').is_file():
            raise FileNotFoundError(f'dataroot_gt: {self.root} is not an LMDB (no data.mdb there) '
                                    "but io_backend.type is 'lmdb'.")
        names = read_meta_info_names(meta_info_file or self.root / 'meta_info.txt')
        keys = sorted(osp.splitext(name)[0] for name in names)
        env = lmdb.open(str(self.root), readonly=True, lock=False, readahead=False)
        try:
            with env.begin() as txn:
                cursor = txn.cursor()
                missing = [key for key in keys if not cursor.set_key(key.encode('utf-8'))]
        finally:
            env.close()
        if missing:
            raise KeyError(f'LMDB {self.root} has no key {missing[0]!r} '
                           f'({len(missing)} listed key(s) missing: {missing[:5]}).')
        return [(key, key) for key in keys]

    def _load_gt(self, source):
        if self.file_client is None:
            # Opened lazily so that each DataLoader worker owns its LMDB handle.
            self.file_client = FileClient(self.backend, **self.io_backend_opt)
        content = self.file_client.get(source, 'gt')
        if content is None:
            raise KeyError(f'LMDB {self.root} has no key {source!r}.')
        return decode_image(content, self.color, source).astype(np.float32) / 255.

    def _random_crop(self, img, source):
        h, w = img.shape[:2]
        size = self.gt_size
        if h < size or w < size:
            raise ValueError(f'Image {source} is {h}x{w}, smaller than gt_size {size}.')
        top, left = random.randint(0, h - size), random.randint(0, w - size)
        return img[top:top + size, left:left + size]

    def _draw_sigma(self, rng):
        if self.sigma_choices is not None:
            return float(rng.choice(self.sigma_choices))
        low, high = self.sigma_range
        return low if low == high else float(rng.uniform(low, high))

    def __getitem__(self, index):
        key, source = self.items[index]
        img_gt = self._load_gt(source)
        if self.phase == 'train':
            img_gt = augment(self._random_crop(img_gt, source), self.use_hflip, self.use_rot)
            rng = np.random.default_rng(int(torch.randint(0, 2**63 - 1, ())))
        else:
            rng = np.random.default_rng(image_noise_seed(self.eval_seed, key))
        img_gt = np.ascontiguousarray(img_gt)
        img_lq, extra = self._degrade(img_gt, rng)
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': source, 'gt_path': source, **extra}

    def __len__(self):
        return len(self.items)

"""Paired folders whose degraded and clean names differ (rain-007.png / norain-007.png): pair by a key."""
import re
from pathlib import Path

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from basicsr_snn.data.image_io import list_images

DEFAULT_PAIR_KEY_REGEX = r'(\d+)$'


def pair_key(stem, pattern):
    """Pair key of a file name without extension; all-digit keys compare as numbers (7 == 007)."""
    match = pattern.search(stem)
    if match is None:
        return None
    key = match.group(1) if pattern.groups else match.group(0)
    return int(key) if key.isdigit() else key


def _keyed_files(folder, pattern, option_name):
    keyed = {}
    for path in list_images(folder, option_name):
        key = pair_key(path.stem, pattern)
        if key is None:
            raise ValueError(f'{option_name}: {path.name} does not match pair_key_regex {pattern.pattern!r}.')
        if key in keyed:
            raise ValueError(f'{option_name}: {keyed[key].name} and {path.name} have the same pair key {key!r}.')
        keyed[key] = path
    return keyed


def pair_paths_by_key(lq_folder, gt_folder, pattern):
    """BasicSR path list ``[{'lq_path', 'gt_path'}, ...]`` pairing files with equal keys, sorted by key."""
    lq_files = _keyed_files(lq_folder, pattern, 'dataroot_lq')
    gt_files = _keyed_files(gt_folder, pattern, 'dataroot_gt')
    lq_only = sorted(path.name for key, path in lq_files.items() if key not in gt_files)
    gt_only = sorted(path.name for key, path in gt_files.items() if key not in lq_files)
    if lq_only or gt_only:
        raise ValueError(f'Unpaired files (pair_key_regex {pattern.pattern!r}): in {lq_folder}: {lq_only[:5]}; '
                         f'in {gt_folder}: {gt_only[:5]}.')
    return [{'lq_path': str(lq_files[key]), 'gt_path': str(gt_files[key])} for key in sorted(gt_files)]


@DATASET_REGISTRY.register()
class PairedFolderDataset(PairedImageDataset):
    """BasicSR's ``PairedImageDataset`` with files paired by a key taken from their names.

    ``PairedImageDataset`` derives each lq name from its gt name through ``filename_tmpl``, which can
    add text around the gt name but not remove any: it cannot map ``norain-007`` to ``rain-007``.
    Here both folders are scanned and files with the same key are paired; loading, cropping,
    flips, ``color: y`` and ``mean``/``std`` are ``PairedImageDataset``'s own.

    Args:
        opt (dict): ``PairedImageDataset``'s options (dataroot_gt, dataroot_lq, io_backend,
            gt_size, use_hflip, use_rot, color, mean, std, phase) with ``io_backend.type: disk``,
            plus:
            pair_key_regex (str): Searched in each file name without extension; group 1 (the whole
                match if the pattern has no group) is the key. All-digit keys compare as numbers.
                Default: ``(\\d+)$``, the trailing number: rain-007.png <-> norain-007.png, and
                rain-7.png <-> norain-007.png.
            scale (int): Default: 1.
        Every file must have exactly one partner; the error names the unpaired ones.

    Returns (per item):
        dict: 'lq', 'gt' (Tensor (C, H, W), float32, RGB), 'lq_path', 'gt_path' (str).
    """

    def __init__(self, opt: dict):
        # PairedImageDataset.__init__ would pair by filename_tmpl and fail; the rest of its state is set here.
        data.Dataset.__init__(self)
        self.opt = {'scale': 1, **opt}
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        if self.io_backend_opt.get('type') != 'disk':
            raise ValueError("PairedFolderDataset supports io_backend.type 'disk' only; LMDBs pair by key already: "
                             f"use PairedImageDataset. Got {self.io_backend_opt.get('type')!r}.")
        if opt.get('meta_info_file') is not None:
            raise ValueError('PairedFolderDataset pairs every file of both folders; meta_info_file is not supported.')
        self.file_client = None
        self.mean, self.std = opt.get('mean'), opt.get('std')
        self.gt_folder, self.lq_folder = Path(opt['dataroot_gt']), Path(opt['dataroot_lq'])
        regex = opt.get('pair_key_regex', DEFAULT_PAIR_KEY_REGEX)
        try:
            pattern = re.compile(regex)
        except (re.error, TypeError) as error:
            raise ValueError(f'pair_key_regex {regex!r} is not a valid regular expression: {error}.') from error
        self.paths = pair_paths_by_key(self.lq_folder, self.gt_folder, pattern)

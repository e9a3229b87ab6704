"""Folder of images -> LMDB with meta_info.txt, through BasicSR's ``LmdbMaker``.

Two fixes over ``basicsr.utils.lmdb_util.make_lmdb_from_imgs``: an existing target raises a clear
error before BasicSR would ``sys.exit(1)``, and the LMDB map size comes from every image rather
than from the first one times the image count (too small when later images are larger).
"""
import shutil
from pathlib import Path

import cv2
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

from basicsr_snn.data.image_io import list_images, read_image

# Bounds on what an image can cost beyond its decoded pixels: PNG row filter bytes and chunk
# headers (stored deflate blocks at worst add 5 bytes per 64 KiB), LMDB page rounding of the
# value, the key and its B-tree entry.
_PNG_OVERHEAD_RATIO = 1.01
_PER_IMAGE_OVERHEAD = 16 * 1024
_MAP_SIZE_FLOOR = 16 * 1024**2


def _read_for_lmdb(path, gray):
    """Pixels as stored: unchanged (bit depth, alpha) by default, the dataset's gray conversion with gray."""
    if gray:
        return read_image(path, 'gray')
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'Cannot decode image {path}: the file is empty, corrupt or not an image.')
    return image if image.ndim == 3 else image[..., None]


def lmdb_map_size(decoded_sizes: list[int]) -> int:
    """LMDB map size (bytes) that fits PNG-encoded images of the given decoded sizes (bytes)."""
    payload = sum(int(size * _PNG_OVERHEAD_RATIO) + _PER_IMAGE_OVERHEAD for size in decoded_sizes)
    return max(_MAP_SIZE_FLOOR, int(payload * 1.1))


def _lmdb_keys(paths):
    """LMDB key of each image: its file name without extension, ASCII and unique (BasicSR's rule)."""
    keys = [path.stem for path in paths]
    non_ascii = [str(p) for p, key in zip(paths, keys) if not key.isascii()]
    if non_ascii:
        raise ValueError(f'LMDB keys must be ASCII (BasicSR encodes them so); rename {non_ascii[:3]}.')
    seen = {}
    for path, key in zip(paths, keys):
        if key in seen:
            raise ValueError(f'{seen[key]} and {path} would share the LMDB key {key!r}; rename one.')
        seen[key] = path
    return keys


def make_lmdb(input_dir: str | Path, output_path: str | Path, gray: bool = False, compress_level: int = 1,
              batch: int = 5000, progress: bool = False) -> dict:
    """Write every image directly inside ``input_dir`` into a new LMDB.

    Args:
        input_dir (str | Path): Folder of images (not recursive).
        output_path (str | Path): New folder ending in ``.lmdb``; must not exist.
        gray (bool): Store one gray channel (0.299 R + 0.587 G + 0.114 B), as
            ``GaussianNoiseDataset`` with ``color: gray`` reads color images. Default: False, the
            pixels are stored unchanged.
        compress_level (int): PNG compression level 0-9. Default: 1 (BasicSR's).
        batch (int): Images per LMDB commit. Default: 5000.
        progress (bool): Show tqdm progress bars. Default: False.

    Returns:
        dict: 'lmdb' (Path), 'meta_info' (Path), 'count' (int), 'map_size' (int, bytes).
    """
    output_path = Path(output_path)
    if output_path.suffix != '.lmdb':
        raise ValueError(f'--output must end with .lmdb (BasicSR selects the backend by it), got {output_path}.')
    if output_path.exists():
        raise FileExistsError(f'{output_path} already exists; remove it or choose another --output.')
    if not isinstance(compress_level, int) or not 0 <= compress_level <= 9:
        raise ValueError(f'compress_level must be an integer 0-9, got {compress_level!r}.')
    paths = list_images(input_dir, '--input')
    keys = _lmdb_keys(paths)

    # A first full read sizes the map from every image and rejects unreadable files before
    # anything is written.
    sizes = [_read_for_lmdb(path, gray).nbytes for path in tqdm(paths, desc='size', disable=not progress)]
    map_size = lmdb_map_size(sizes)

    maker = LmdbMaker(str(output_path), map_size=map_size, batch=batch, compress_level=compress_level)
    try:
        for path, key in zip(tqdm(paths, desc='write', disable=not progress), keys):
            image = _read_for_lmdb(path, gray)
            _, encoded = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
            maker.put(encoded.tobytes(), key, image.shape)
        maker.close()
    except BaseException:
        maker.txt_file.close()
        maker.env.close()
        shutil.rmtree(output_path, ignore_errors=True)
        raise
    return {'lmdb': output_path, 'meta_info': output_path / 'meta_info.txt', 'count': len(paths), 'map_size': map_size}

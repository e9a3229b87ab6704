"""Listing and decoding images the same way for folders, LMDBs and the LMDB maker.

One decoder for every backend is what makes a folder and the LMDB built from it give identical
samples: both end in ``cv2.imdecode(..., IMREAD_COLOR)`` and, for gray data, the same BGR->gray
conversion (0.299 R + 0.587 G + 0.114 B, full range).
"""
from pathlib import Path

import cv2
import numpy as np

from basicsr_snn.utils.checks import check_choice

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
COLOR_MODES = ('gray', 'rgb')


def list_images(folder: str | Path, option_name: str = 'folder') -> list[Path]:
    """Image files directly inside ``folder``, sorted by name.

    Args:
        folder (str | Path): Folder to scan (not recursive; hidden files are skipped).
        option_name (str): Option that named the folder, quoted in errors.

    Returns:
        list[Path]: At least one image path.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f'{option_name}: {folder} does not exist.')
    if not folder.is_dir():
        raise NotADirectoryError(f'{option_name}: {folder} is not a folder.')
    images = sorted(p for p in folder.iterdir()
                    if p.is_file() and not p.name.startswith('.') and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f'{option_name}: no images ({", ".join(IMAGE_SUFFIXES)}) in {folder}.')
    return images


def decode_image(content: bytes | None, color: str, source: str) -> np.ndarray:
    """Decode encoded image bytes.

    Args:
        content (bytes | None): Encoded image (PNG, JPEG, ...).
        color (str): 'rgb' keeps three channels (BGR order, as cv2 and BasicSR use); 'gray' converts
            them to one luminance channel. Gray sources are replicated first, so 'gray' returns
            their pixels unchanged.
        source (str): File path or LMDB key, quoted in errors.

    Returns:
        ndarray: (H, W, 3) BGR or (H, W, 1) gray, uint8.
    """
    check_choice('color', color, COLOR_MODES)
    image = None
    if content:
        image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'Cannot decode image {source}: the file is empty, corrupt or not an image.')
    if color == 'gray':
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[..., None]
    return image


def read_image(path: str | Path, color: str) -> np.ndarray:
    """Read and decode one image file (see ``decode_image``)."""
    return decode_image(Path(path).read_bytes(), color, str(path))

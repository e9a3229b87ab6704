"""A small offline denoising set built from scikit-image's bundled photos.

Layout under ``root`` (default ``datasets/demo``)::

    train/color/  128x128 tiles of astronaut, coffee, rocket, immunohistochemistry
    train/gray/   tiles of brick, grass, gravel, moon, page, text, clock + the train color photos in gray
    val/color/    chelsea, hubble_deep_field, retina: centre square resized to 128x128
    val/gray/     camera, coins + the val color photos in gray

Train and val photos are disjoint. Only loaders that read files bundled in the scikit-image wheel
are used (no download). Every file is a deterministic function of the photo, so a rerun rewrites
nothing; PNGs left from other tile sizes are removed.
"""
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

TRAIN_PHOTOS = {
    'color': ('astronaut', 'coffee', 'rocket', 'immunohistochemistry'),
    'gray': ('brick', 'grass', 'gravel', 'moon', 'page', 'text', 'clock'),
}
VAL_PHOTOS = {
    'color': ('chelsea', 'hubble_deep_field', 'retina'),
    'gray': ('camera', 'coins'),
}
SPLITS = {'train': TRAIN_PHOTOS, 'val': VAL_PHOTOS}


def _photo(name, color):
    """Bundled photo as uint8 BGR (color) or single-channel (gray) array."""
    image = np.asarray(getattr(skdata, name)())
    if image.ndim == 2:
        return image[..., None]
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[..., None] if color == 'gray' else bgr


def _split_images(photos, color, split, tile_size, val_size):
    """{file name: image} of one folder; gray folders also hold the color photos in gray."""
    names = photos['color'] + (photos['gray'] if color == 'gray' else ())
    images = {}
    for name in names:
        image = _photo(name, color)
        if split == 'train':
            rows, cols = image.shape[0] // tile_size, image.shape[1] // tile_size
            for row in range(rows):
                for col in range(cols):
                    tile = image[row * tile_size:(row + 1) * tile_size, col * tile_size:(col + 1) * tile_size]
                    images[f'{name}_{row:02d}_{col:02d}.png'] = tile
        else:
            side = min(image.shape[:2])
            top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
            square = image[top:top + side, left:left + side]
            images[f'{name}.png'] = cv2.resize(square, (val_size, val_size), interpolation=cv2.INTER_AREA)
    return images


def _sync_folder(folder, images):
    """Write images whose PNG differs from the file on disk; remove PNGs not in ``images``.

    Returns:
        tuple[int, int]: Files written and stale files removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, image in images.items():
        ok, encoded = cv2.imencode('.png', image)
        if not ok:
            raise RuntimeError(f'OpenCV could not encode {folder / name}.')
        path = folder / name
        if not path.is_file() or path.read_bytes() != encoded.tobytes():
            path.write_bytes(encoded.tobytes())
            written += 1
    stale = [path for path in folder.glob('*.png') if path.name not in images]
    for path in stale:
        path.unlink()
    return written, len(stale)


def make_demo_dataset(root: str | Path = 'datasets/demo', tile_size: int = 128, val_size: int = 128,
                      log=None) -> dict[str, Path]:
    """Create or refresh the demo set.

    Args:
        root (str | Path): Output folder. Default: 'datasets/demo' (relative to the working directory).
        tile_size (int): Side of the square training tiles. Default: 128.
        val_size (int): Side of the square validation images. Default: 128.
        log (callable | None): Called with one line per folder (e.g. ``print``). Default: silent.

    Returns:
        dict[str, Path]: 'train_gray', 'train_color', 'val_gray', 'val_color' -> folder.
    """
    for option, value in (('tile_size', tile_size), ('val_size', val_size)):
        if not isinstance(value, int) or value < 8:
            raise ValueError(f'{option} must be an integer >= 8, got {value!r}.')
    root = Path(root)
    folders = {}
    for split, photos in SPLITS.items():
        for color in ('gray', 'color'):
            folder = root / split / color
            images = _split_images(photos, color, split, tile_size, val_size)
            written, removed = _sync_folder(folder, images)
            if log is not None:
                log(f'{folder}: {len(images)} images ({written} written, {len(images) - written} unchanged, '
                    f'{removed} stale removed)')
            folders[f'{split}_{color}'] = folder
    return folders

"""Decode every image of a folder or an LMDB and report those that do not decode."""
from collections.abc import Callable
from pathlib import Path

from basicsr_snn.data.image_io import decode_image, list_images


def _lmdb_entries(root):
    """(key, encoded bytes) of every entry of an LMDB folder, in key order."""
    import lmdb
    environment = lmdb.open(str(root), readonly=True, lock=False, readahead=False, meminit=False)
    try:
        with environment.begin(write=False) as transaction:
            for key, value in transaction.cursor():
                yield key.decode('ascii', 'replace'), bytes(value)
    finally:
        environment.close()


def bad_images(root: str | Path, progress: Callable | None = None) -> tuple[int, list[tuple[str, str]]]:
    """``[(source, reason), ...]`` for every image of ``root`` (a folder or an ``.lmdb``) that fails to decode.

    Args:
        root (str | Path): A folder of images or an LMDB folder (holding ``data.mdb``).
        progress (callable | None): Called as ``progress(done, total)`` (total None for an LMDB).

    Returns:
        tuple[int, list]: the number of images checked and the failures.
    """
    root = Path(root)
    if (root / 'data.mdb').is_file():
        entries, total = ((key, lambda value=value: value) for key, value in _lmdb_entries(root)), None
    else:
        paths = list_images(root, 'input')
        entries, total = ((str(path), path.read_bytes) for path in paths), len(paths)
    failures, checked = [], 0
    for source, read in entries:
        checked += 1
        try:
            decode_image(read(), 'rgb', source)
        except (OSError, ValueError) as error:
            failures.append((source, str(error)))
        if progress:
            progress(checked, total)
    return checked, failures

"""Pack a folder of images into an LMDB (with meta_info.txt) for BasicSR's lmdb io_backend.

    python scripts/make_lmdb.py --input datasets/Train400 --output datasets/Train400.lmdb --gray
"""
import argparse

from basicsr_snn.data.lmdb_tools import make_lmdb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of images (not recursive)')
    parser.add_argument('--output', required=True, help='new LMDB folder, ending in .lmdb; must not exist')
    parser.add_argument('--gray', action='store_true', help='store one gray channel (0.299 R + 0.587 G + 0.114 B)')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression level 0-9 (default 1)')
    args = parser.parse_args(argv)
    try:
        result = make_lmdb(args.input, args.output, gray=args.gray, compress_level=args.compress_level,
                           progress=True)
    except (FileExistsError, FileNotFoundError, NotADirectoryError, ValueError) as error:
        parser.exit(2, f'make_lmdb.py: error: {error}\n')
    print(f"Wrote {result['count']} images to {result['lmdb']} (map size {result['map_size'] / 1024**2:.1f} MiB), "
          f"meta info in {result['meta_info']}.")


if __name__ == '__main__':
    main()

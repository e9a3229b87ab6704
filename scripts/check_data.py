"""Decode every image of a training folder or LMDB and list the ones that do not decode.

    python scripts/check_data.py datasets/Train400
    python scripts/check_data.py datasets/Train400.lmdb

Exit status 0 when every image decodes, 1 otherwise (the bad ones are listed), 2 on a bad path.
"""
import argparse
import sys

from basicsr_snn.data.check_data import bad_images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('root', help='a folder of images or an LMDB folder (holding data.mdb)')
    args = parser.parse_args(argv)

    def progress(done, total):
        if done % 500 == 0:
            print(f'{done}/{total or "?"} decoded', flush=True)

    try:
        checked, failures = bad_images(args.root, progress)
    except (FileNotFoundError, NotADirectoryError) as error:
        parser.exit(2, f'check_data.py: error: {error}\n')
    for source, reason in failures:
        print(f'BAD {source}: {reason}')
    print(f'{checked} images checked, {len(failures)} do not decode')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())

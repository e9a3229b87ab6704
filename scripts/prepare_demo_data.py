"""Create (or refresh) the offline demo denoising set from scikit-image's bundled photos.

    python scripts/prepare_demo_data.py            # -> datasets/demo/{train,val}/{gray,color}
    python scripts/prepare_demo_data.py --root /tmp/demo
"""
import argparse

from basicsr_snn.data.demo_data import make_demo_dataset


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='datasets/demo', help='output folder (default: datasets/demo)')
    parser.add_argument('--tile-size', type=int, default=128, help='side of the training tiles (default 128)')
    parser.add_argument('--val-size', type=int, default=128, help='side of the validation images (default 128)')
    args = parser.parse_args(argv)
    make_demo_dataset(args.root, tile_size=args.tile_size, val_size=args.val_size, log=print)


if __name__ == '__main__':
    main()

"""Print a network's module paths and output shapes, to choose feature-hint points.

    python scripts/list_modules.py --arch SpikerIR --set in_ch=1 out_ch=1 dim=48 --size 64 64
    python scripts/list_modules.py -opt options/train.yml --network network_g --size 481 321 --depth 1

Any architecture in BasicSR's registry (this plugin's included) can be listed. Option values
are read as YAML (``T=4``, ``enc_blocks=[1,2,2]``, ``attention=false``).
"""
import argparse

import yaml

IN_CHANNEL_KEYS = ('in_ch', 'num_in_ch', 'inp_channels', 'in_chans', 'in_channels', 'in_nc')


def parse_key_values(pairs):
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep:
            raise SystemExit(f'list_modules.py: --set expects KEY=VALUE, got {pair!r}')
        options[key] = yaml.safe_load(value)
    return options


def network_options(args):
    if args.arch:
        return {'type': args.arch, **parse_key_values(args.set)}
    try:
        with open(args.options_file, encoding='utf-8') as stream:
            options = yaml.safe_load(stream)
    except OSError as error:
        raise SystemExit(f'list_modules.py: -opt {args.options_file}: {error.strerror} (the option files are in '
                         'options/)') from None
    if not isinstance(options, dict) or args.network not in options:
        sections = sorted(key for key in (options or {}) if str(key).startswith('network_'))
        raise SystemExit(f'list_modules.py: {args.options_file} has no {args.network!r} section; it has {sections}')
    return {**options[args.network], **parse_key_values(args.set)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--arch', help='registered architecture name, e.g. SpikerIR, Restormer, SwinIR')
    source.add_argument('-opt', dest='options_file', help='BasicSR options YAML')
    parser.add_argument('--network', default='network_g', help='section of the options file (default network_g)')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='architecture options, read as YAML (override those of -opt)')
    parser.add_argument('--size', nargs=2, type=int, default=(64, 64), metavar=('H', 'W'))
    parser.add_argument('--channels', type=int, help='input channels (default: from the options, else 3)')
    parser.add_argument('--depth', type=int, help='list paths with at most this many dotted parts')
    args = parser.parse_args()

    import basicsr_snn  # noqa: F401  (registers the plugin's architectures)
    from basicsr_snn.models.snn_model import build_network_from_options
    from basicsr_snn.utils.module_paths import format_module_table, list_module_paths

    options = network_options(args)
    channels = args.channels or next((options[key] for key in IN_CHANNEL_KEYS if key in options), 3)
    try:
        model = build_network_from_options({args.network: dict(options)}, args.network)
    except (ValueError, TypeError) as error:
        raise SystemExit(f'list_modules.py: {error}') from None
    rows = list_module_paths(model, (1, channels, *args.size), max_depth=args.depth)
    print(format_module_table(rows))


if __name__ == '__main__':
    main()

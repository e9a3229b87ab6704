"""Export a fake-quantized network to integers and check the integer forward against it.

Folds every batch norm that follows a conv into it (eval mode, running statistics), writes the int8 weights,
per-channel scales and int32 biases of every conv / linear layer, runs the integer reference forward (spike counts
or quantized inputs x int8 weights, accumulated in int32, then rescaled; ``basicsr_snn.archs.integer_reference``)
on real images and prints ``max abs difference: <x>`` against the fake-quantized network, both in float64.

    python scripts/export_int8.py --arch "{type: SpikerIR, in_ch: 1, out_ch: 1, weight_bits: 8, act_bits: 8}" \\
        --ckpt net_g.pth --out results/int8

``--arch`` is an inline mapping with a ``type`` key, or a YAML file holding one (an options file: its
``network_g``). Writes ``<out>/int8_layers.pt`` (per layer: ``weight`` int8, ``weight_scale`` float32 per output
channel, ``bias_int32`` in units of input scale x weight scale / 2^bias_shift, ``input_scale``,
``input_zero_point``, ``bits``, ``folded_norm``) and ``<out>/export.json`` (layers, images, the difference).
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml

import basicsr_snn  # noqa: F401  (before basicsr: its import shims; registers the archs)
from basicsr_snn.archs.integer_reference import integer_forward, integer_layers
from basicsr_snn.cli import user_errors_as_one_line
from basicsr_snn.data.image_io import list_images, read_image
from basicsr_snn.models.snn_model import build_network_from_options
from basicsr_snn.utils.checkpoint import load_weights

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO_ROOT / 'datasets' / 'demo' / 'val' / 'gray'


def read_arch(text: str) -> dict:
    """Arch options from a YAML file (its ``network_g`` when it is an options file) or an inline mapping."""
    path = Path(text)
    arch = yaml.safe_load(path.read_text() if path.is_file() else text)
    if isinstance(arch, dict) and 'network_g' in arch:
        arch = arch['network_g']
    if not isinstance(arch, dict) or 'type' not in arch:
        raise ValueError(f'--arch must be a YAML file or mapping with a "type" key (or an options file with '
                         f'network_g), e.g. "{{type: SpikerIR, weight_bits: 8, act_bits: 8}}"; got {text!r}')
    return arch


def load_inputs(folder, count: int, channels: int, sigma: float, seed: int) -> tuple[torch.Tensor, list[str]]:
    """The first ``count`` images of ``folder`` (all cropped to the smallest), with Gaussian noise of ``sigma``/255."""
    paths = list_images(folder, '--images')[:count]
    color = 'gray' if channels == 1 else 'rgb'
    images = [read_image(path, color) for path in paths]
    height, width = min(image.shape[0] for image in images), min(image.shape[1] for image in images)
    array = np.stack([image.reshape(image.shape[0], image.shape[1], -1)[:height, :width] for image in images])
    clean = torch.from_numpy(array.astype(np.float32) / 255.).permute(0, 3, 1, 2)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)) * sigma / 255.
    return clean + noise, [path.name for path in paths]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', required=True, help='arch options: YAML file or inline mapping with a "type" key')
    parser.add_argument('--ckpt', help='checkpoint (.pth, key params); default: random weights')
    parser.add_argument('--images', help=f'image folder (default: {DEFAULT_IMAGES.relative_to(REPO_ROOT)})')
    parser.add_argument('--num-images', type=int, default=2, help='images to compare on (default 2)')
    parser.add_argument('--sigma', type=float, default=25., help='Gaussian noise added, /255 (default 25)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the noise and of unloaded weights (default 0)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--debug', action='store_true', help='show the full traceback of an error')
    args = parser.parse_args(argv)
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    return args


def export(args) -> dict:
    arch = read_arch(args.arch)
    torch.manual_seed(args.seed)
    net = build_network_from_options({'network_g': arch}, 'network_g').eval()
    if args.ckpt:
        load_weights(net, args.ckpt, option_key='--ckpt')
    images, names = load_inputs(args.images or DEFAULT_IMAGES, args.num_images, arch.get('in_ch', 3), args.sigma,
                                args.seed)
    net = net.double()
    images = images.double()
    with torch.no_grad():
        fake_quantized = net(images)  # also calibrates the input quantizers of a network that never observed
    layers = integer_layers(net)
    integer = integer_forward(net, layers, images)
    difference = float((integer - fake_quantized).abs().max())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({name: layer.to_dict() for name, layer in layers.items()}, out / 'int8_layers.pt')
    summary = {'arch': arch, 'checkpoint': args.ckpt, 'images': names, 'sigma': args.sigma,
               'max_abs_difference': difference,
               'layers': {name: {'shape': list(layer.weight.shape), 'bits': layer.bits, 'bias_shift': layer.bias_shift,
                                 'folded_norm': layer.folded_norm, 'input_scale': layer.input_scale}
                          for name, layer in layers.items()}}
    (out / 'export.json').write_text(json.dumps(summary, indent=1))
    print(f'{len(layers)} layers ({sum(layer.folded_norm is not None for layer in layers.values())} batch norms '
          f'folded) written to {out / "int8_layers.pt"}; integer forward vs fake-quantized network (float64) on '
          f'{len(names)} image(s) {tuple(images.shape[-2:])}:')
    print(f'max abs difference: {difference:.3g}')
    return summary


def main(argv=None):
    args = parse_args(argv)
    with user_errors_as_one_line('export_int8.py', args.debug):
        return export(args)


if __name__ == '__main__':
    main()

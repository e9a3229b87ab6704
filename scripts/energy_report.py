"""Compute-energy report: a spiking student against its ANN teacher and its ReLU twin.

From a BasicSR options file (``network_g`` = student, optional ``network_t`` = teacher,
checkpoints from ``path.pretrain_network_g`` / ``path.pretrain_network_t``):

    python scripts/energy_report.py -opt options/distill_denoise.yml

or from arch options (YAML / JSON mappings) and checkpoints:

    python scripts/energy_report.py --student-arch "{type: SpikerIR, in_ch: 1, out_ch: 1}" \\
        --teacher-arch "{type: Restormer, inp_channels: 1, out_channels: 1}" \\
        --student-ckpt net_g.pth --teacher-ckpt restormer.pth --size 256 256 --num-images 2

The ReLU twin is built from the student options (type ``<student type>ReLU``, the keyword
arguments it accepts); its weights do not matter, since an ANN costs all its MACs. Images:
the first N of ``--images`` (default: the demo validation set, else scikit-image's camera),
resized to cover ``--size`` and center-cropped. Convention: ``basicsr_snn.analysis.energy``.
Every network is costed at its own precision, read from it (fp32, or the int8 / int4 of its ``weight_bits`` /
``act_bits``); ``--precision`` costs every operation at one preset instead, a what-if.
Per network it gives compute energy (MACs and SOPs, our convention), memory energy (weights,
activations, membranes) under two sets of assumptions (``gpu``: spikes as fp32 values and membranes
written back; ``neuromorphic``: spikes as bits and local membranes) and their totals, and beside
them spikingjelly's own estimators (``estimate_simple_energy`` with and without memory,
``estimate_lemaire_energy``, or the reason it cannot run). Writes a JSON report (``--out``; each
network's ``compute_pj``, ``memory_pj``, ``total_pj`` follow ``--memory``) and a bar chart of the
student's per-layer input spike rates (``--plot``).
"""
import argparse
import inspect
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

import basicsr_snn  # noqa: F401  (before basicsr: its import shims; registers the archs)
from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_snn.analysis import (ENERGY_PRESETS_45NM, MEMORY_ASSUMPTIONS, MEMORY_NOTE, SYNAPTIC_LAYER_TYPES,
                                  AnalysedNetwork, analyse_energy, calibrate_batchnorm, estimates_table, ratios,
                                  spikingjelly_estimates, summary_table)
from basicsr_snn.cli import user_errors_as_one_line
from basicsr_snn.data.image_io import list_images, read_image
from basicsr_snn.models.snn_model import build_network_from_options
from basicsr_snn.utils.checkpoint import load_weights

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_IMAGES = REPO_ROOT / 'datasets' / 'demo' / 'val' / 'gray'
TWIN_SUFFIX = 'ReLU'
ROLE_SUFFIXES = {'student': 'g', 'teacher': 't'}  # network_g, network_t and their path options
SPIKING_OPTIONS = ('T', 'neuron', 'tau', 'v_threshold', 'detach_reset', 'surrogate', 'surrogate_alpha',
                   'neuron_backend', 'spike_levels', 'spike_inference')


def parse_arch(text, option):
    """Arch options from a YAML / JSON mapping with a ``type`` key."""
    arch = yaml.safe_load(text)
    if not isinstance(arch, dict) or 'type' not in arch:
        raise ValueError(f'{option} must be a mapping with a "type" key, e.g. "{{type: SpikerIR, dim: 5}}"; '
                         f'got {text!r}')
    return arch


def network_specs(args):
    """``{role: (arch options, checkpoint, param key, strict, key prefix to strip)}`` for the student and teacher."""
    if args.opt:
        if not Path(args.opt).is_file():
            raise ValueError(f'-opt {args.opt}: no such option file (the option files are in options/)')
        options = yaml.safe_load(Path(args.opt).read_text())
        if 'network_g' not in options:
            raise ValueError(f'-opt {args.opt}: no network_g (the student) in the options file')
        paths = options.get('path') or {}
        specs = {}
        for role, suffix in ROLE_SUFFIXES.items():
            if f'network_{suffix}' in options:
                specs[role] = (options[f'network_{suffix}'], paths.get(f'pretrain_network_{suffix}'),
                               paths.get(f'param_key_{suffix}', 'params'), paths.get(f'strict_load_{suffix}', True),
                               paths.get(f'strip_prefix_{suffix}'))
        return specs
    if not args.student_arch:
        raise ValueError('Give either -opt OPTIONS.yml or --student-arch "{type: ..., ...}"')
    specs = {'student': (parse_arch(args.student_arch, '--student-arch'), args.student_ckpt, 'params', True, None)}
    if args.teacher_arch:
        specs['teacher'] = (parse_arch(args.teacher_arch, '--teacher-arch'), args.teacher_ckpt, 'params', True, None)
    return specs


def twin_arch(student_arch):
    """Options of the student's ReLU twin, or None when no ``<type>ReLU`` arch is registered.

    The twin gets the student's options minus the spiking-only ones (``SPIKING_OPTIONS``: the
    twin keeps its own defaults, e.g. one time step) and minus any it does not accept.
    """
    twin_type = student_arch['type'] + TWIN_SUFFIX
    if twin_type not in ARCH_REGISTRY:
        return None
    parameters = inspect.signature(ARCH_REGISTRY.get(twin_type)).parameters.values()
    takes_any = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)
    accepted = {parameter.name for parameter in parameters}
    return {'type': twin_type, **{key: value for key, value in student_arch.items()
                                  if key != 'type' and key not in SPIKING_OPTIONS and (takes_any or key in accepted)}}


def input_channels(net):
    first_layer = next((m for m in net.modules() if isinstance(m, SYNAPTIC_LAYER_TYPES)), None)
    if first_layer is None:
        raise ValueError(f'{type(net).__name__} has no conv / linear layer to read its input channels from')
    return first_layer.in_channels if hasattr(first_layer, 'in_channels') else first_layer.in_features


def load_images(folder, count, size):
    """``count`` BGR uint8 images (H, W, 3) covering ``size`` = (H, W), with their names."""
    if folder is None and not DEFAULT_IMAGES.is_dir():
        from skimage import data
        images, names = [cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)], ['skimage.data.camera']
    else:
        paths = list_images(folder or DEFAULT_IMAGES, '--images')[:count]
        images, names = [read_image(path, 'rgb') for path in paths], [path.name for path in paths]
    return [cover_and_crop(image, size) for image in images], names


def cover_and_crop(image, size):
    height, width = size
    scale = max(height / image.shape[0], width / image.shape[1])
    if scale != 1:
        resized = (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale)))
        image = cv2.resize(image, resized, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return image[top:top + height, left:left + width]


def to_tensor(images, channels):
    """BGR uint8 images -> ``(N, channels, H, W)`` float in [0, 1] (RGB or gray, as BasicSR feeds them)."""
    if channels == 1:
        arrays = [cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[..., None] for image in images]
    elif channels == 3:
        arrays = [cv2.cvtColor(image, cv2.COLOR_BGR2RGB) for image in images]
    else:
        raise ValueError(f'Networks with {channels} input channels are not supported (1 or 3)')
    return torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.).permute(0, 3, 1, 2).contiguous()


def plot_rates(report, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    layers = [layer for layer in report.layers if layer.spike_fed]
    figure, axes = plt.subplots(figsize=(max(6., 0.28 * len(layers) + 2), 4.5))
    axes.bar(range(len(layers)), [layer.input_rate for layer in layers], color='tab:blue')
    axes.axhline(report.mean_input_rate, color='tab:red', linestyle='--',
                 label=f'MAC-weighted mean {report.mean_input_rate:.3f}')
    axes.set_xticks(range(len(layers)), [layer.name for layer in layers], rotation=90, fontsize=7)
    axes.set_ylabel('input spikes per entry (fraction of ones, or mean count)')
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', help='BasicSR options file with network_g (student) and optional network_t (teacher)')
    parser.add_argument('--student-arch', help='student arch options, e.g. "{type: SpikerIR, in_ch: 1, out_ch: 1}"')
    parser.add_argument('--teacher-arch', help='teacher arch options, e.g. "{type: Restormer}"')
    parser.add_argument('--student-ckpt', help='student checkpoint (.pth)')
    parser.add_argument('--teacher-ckpt', help='teacher checkpoint (.pth)')
    parser.add_argument('--no-twin', action='store_true', help='skip the ReLU twin')
    parser.add_argument('--images', help=f'image folder (default: {DEFAULT_IMAGES.relative_to(REPO_ROOT)}, '
                        'else skimage.data.camera())')
    parser.add_argument('--num-images', type=int, default=2, help='images to average the rates over (default 2)')
    parser.add_argument('--size', type=int, nargs=2, default=(256, 256), metavar=('H', 'W'),
                        help='image size the estimate is stated for (default 256 256)')
    parser.add_argument('--T', type=int, help="student time steps, set in its arch options (default: the options' T)")
    parser.add_argument('--precision', choices=sorted(ENERGY_PRESETS_45NM) + ['custom'],
                        help='what-if: cost every operation at this 45 nm preset (default: each layer at its own '
                             'precision, read from the network: fp32, or its weight_bits / act_bits)')
    parser.add_argument('--mac-pj', type=float, help='what-if energy per MAC in pJ (overrides the --precision preset)')
    parser.add_argument('--ac-pj', type=float, help='what-if energy per accumulate in pJ (overrides the --precision '
                        'preset)')
    parser.add_argument('--memory', default='gpu', choices=tuple(MEMORY_ASSUMPTIONS),
                        help='memory assumptions of the JSON\'s memory_pj / total_pj (default gpu; both are printed)')
    parser.add_argument('--no-spikingjelly', action='store_true', help="skip spikingjelly's estimators")
    parser.add_argument('--calibrate-bn', action='store_true',
                        help="set the student's batch-norm statistics on the images first (for untrained students)")
    parser.add_argument('--seed', type=int, default=0, help='seed of the initial weights of unloaded networks')
    parser.add_argument('--out', default='results/energy_report.json',
                        help='JSON report (default results/energy_report.json)')
    parser.add_argument('--plot', help='bar chart of per-layer spike rates (default: --out with .png)')
    parser.add_argument('--debug', action='store_true', help='show the full traceback of an error')
    args = parser.parse_args(argv)
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    if args.precision is None and (args.mac_pj is not None or args.ac_pj is not None):
        parser.error('--mac-pj / --ac-pj override a what-if preset: give --precision too (e.g. --precision custom)')
    if min(args.size) < 1:
        parser.error(f'--size must be positive, got {args.size}')
    return args


def main(argv=None):
    args = parse_args(argv)
    with user_errors_as_one_line('energy_report.py', args.debug):
        return write_energy_report(args)


def write_energy_report(args):
    specs = network_specs(args)
    if args.T is not None:
        # through the options, since T can shape weights (SpikerIR's temporal attention)
        student_arch, *rest = specs['student']
        specs['student'] = ({**student_arch, 'T': args.T}, *rest)
    if not args.no_twin:
        arch = twin_arch(specs['student'][0])
        if arch is None:
            print(f'No ReLU twin registered as {specs["student"][0]["type"]}{TWIN_SUFFIX}: skipped.')
        else:
            specs['twin'] = (arch, None, None, True, None)
    images, names = load_images(args.images, args.num_images, args.size)
    energy_options = dict(precision=args.precision, mac_pj=args.mac_pj, ac_pj=args.ac_pj)

    reports = {}
    for role, (arch, checkpoint, param_key, strict, strip_prefix) in specs.items():
        print(f'Analysing the {role} ({arch["type"]}) on {len(names)} image(s) of {args.size[0]}x{args.size[1]}...',
              flush=True)
        torch.manual_seed(args.seed)
        net = build_network_from_options({role: arch}, role)
        if checkpoint:
            load_weights(net, checkpoint, param_key, strict, option_key=f'{role} checkpoint', strip_prefix=strip_prefix,
                         prefix_option=f'path.strip_prefix_{ROLE_SUFFIXES[role]}')
        elif role == 'student':
            print('Student without checkpoint: random weights, its firing rates say little'
                  + (' (batch-norm statistics calibrated on the images).' if args.calibrate_bn else '.'))
        inputs = to_tensor(images, input_channels(net))
        if role == 'student' and args.calibrate_bn:
            calibrate_batchnorm(net, inputs)
        report = analyse_energy(net, inputs, spiking=role == 'student', progress=f'{role}: rates', **energy_options)
        estimates = {}
        if not args.no_spikingjelly:
            print(f"  spikingjelly's estimators on the {role}...", flush=True)
            estimates = spikingjelly_estimates(net, inputs[:1], report.mac_pj, report.ac_pj)
        reports[role] = AnalysedNetwork(arch, report, estimates)

    student = reports['student'][1]
    height, width = args.size
    print(student.table())
    print()
    precision = (f'what-if {args.precision} for every operation' if args.precision
                 else 'each layer at its own precision (fp32, or its weight_bits / act_bits)')
    print(f'Per image at {height}x{width}, {len(names)} image(s) ({", ".join(names)}), {precision}; '
          f'student T={student.time_steps}.')
    print(summary_table(reports))
    if not args.no_spikingjelly:
        print()
        print(estimates_table(reports))
    result_ratios = ratios(reports)
    for pair, values in result_ratios.items():
        print(f'{pair}: ' + ', '.join(f'{key} {value:.4g} (1/{1 / value:.3g})' for key, value in values.items()))
    print(MEMORY_NOTE)

    result = {
        'image_size': [height, width],
        'images': names,
        'networks': {role: {'arch': arch, 'checkpoint': specs[role][1], **report.to_dict(args.memory),
                            'estimates': estimates}
                     for role, (arch, report, estimates) in reports.items()},
        'ratios': result_ratios,
        'note': MEMORY_NOTE,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    plot = Path(args.plot) if args.plot else out.with_suffix('.png')
    plot_rates(student, plot, f'{reports["student"][0]["type"]}: per-layer input spike rates, '
               f'{height}x{width}, T={student.time_steps}')
    print(f'Wrote {out} and {plot}')
    return result


if __name__ == '__main__':
    main()

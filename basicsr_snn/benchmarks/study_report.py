"""The gap study's table, plot and JSON, from whatever arms have finished.

Per arm: parameters; final PSNR / SSIM per validation set; the gap to its design's ReLU twin (of
the same seed when it was trained, else of another seed);
the gain over scratch of the same design (the mean over scratch seeds, with half their spread,
the noise floor); the first curve iteration at which it reaches scratch's final PSNR; whether
its curve flattened (PSNR gained over the last quarter of the iterations, and the learning rate
there as a fraction of the peak); its precision (bits of weights / analog activations); energy per 256x256 image
at its own precision (compute, and compute + memory under each memory assumption set); wall time.
"""
import json
from pathlib import Path

import numpy as np
from basicsr.archs import build_network

from basicsr_snn.analysis import ENERGY_MEASURES, analyse_energy, energy_measures
from basicsr_snn.benchmarks.arms import Arm
from basicsr_snn.benchmarks.protocol import iterations_to_reach
from basicsr_snn.benchmarks.study import CHECKPOINT, Study
from basicsr_snn.utils.checkpoint import load_weights

ENERGY_SIZE = 256
ENERGY_CACHE = 'energy.json'
ENERGY_KEYS = ('image_size', 'energy_uj', 'compute_pj', 'memory', 'macs', 'sops', 'mean_firing_rate',
               'mean_input_rate', 'note')


def energy_image(study):
    """The first image of the first final-score set, noisy, center-cropped to 256 x 256."""
    _, _, final_loaders = study.data()
    data = next(iter(next(iter(final_loaders.values()))))
    lq = data['lq']
    height, width = min(ENERGY_SIZE, lq.shape[-2]), min(ENERGY_SIZE, lq.shape[-1])
    top, left = (lq.shape[-2] - height) // 2, (lq.shape[-1] - width) // 2
    return lq[..., top:top + height, left:left + width]


def arm_energy(study, name, result):
    """Compute energy of one finished arm's network (cached next to its result)."""
    cache = study.out / name / ENERGY_CACHE
    if cache.is_file():
        energy = json.loads(cache.read_text())
        if set(ENERGY_KEYS) <= set(energy):
            return energy
    network = build_network(dict(result['network']))
    load_weights(network, study.out / name / CHECKPOINT, option_key=f'{name}/{CHECKPOINT}')
    energy = network_energy(network, energy_image(study), spiking=result['network']['type'] == 'SpikerIR')
    cache.write_text(json.dumps(energy, indent=1))
    return energy


def network_energy(network, images, spiking):
    """The energy figures a study keeps of a network: compute, memory under each assumption, rates."""
    report = analyse_energy(network, images, spiking=spiking).to_dict()
    return {key: report[key] for key in ENERGY_KEYS}


def flattening(curve, set_name):
    """PSNR gained over the last quarter of the curve, and the learning rate there / the peak."""
    iterations, psnr, lrs = curve['iters'], curve[set_name]['psnr'], curve['lr']
    quarter = iterations[-1] * 3 / 4
    index = next(i for i, iteration in enumerate(iterations) if iteration >= quarter)
    return {'late_gain_db': psnr[-1] - psnr[index], 'from_iter': iterations[index],
            'lr_fraction_there': lrs[index] / max(lrs) if max(lrs) else None}


def _twin_result(results, arm):
    """The finished twin of ``arm``'s seed, else of any seed of its design (the ceiling hardly depends on it)."""
    if arm.twin.name in results:
        return results[arm.twin.name]
    prefix = arm.twin.name.rsplit('.s', 1)[0] + '.s'
    return next((result for name, result in sorted(results.items()) if name.startswith(prefix)), None)


def summarise(study: Study, with_energy: bool = True) -> dict:
    """Rows of every finished arm, plus the noise floor of every design with scratch seeds."""
    results = study.finished()
    set_names = [Path(d).name for d in study.protocol.val_dirs]
    scratch = {}
    for name, result in results.items():
        if result['recipe'] == 'scratch':
            scratch.setdefault(result['design'], []).append(result)
    floors = {}
    for design, runs in scratch.items():
        floors[design] = {}
        for set_name in set_names:
            finals = [run['final'][set_name]['psnr'] for run in runs]
            curve_finals = [run['curve'][set_name]['psnr'][-1] for run in runs]
            floors[design][set_name] = {'mean': float(np.mean(finals)), 'half_spread': (max(finals) - min(finals)) / 2,
                                        'seeds': len(runs), 'curve_final_mean': float(np.mean(curve_finals)),
                                        'iters_to_final': [iterations_to_reach(run['curve']['iters'],
                                                                               run['curve'][set_name]['psnr'],
                                                                               run['curve'][set_name]['psnr'][-1])
                                                           for run in runs]}
    rows = []
    for name, result in results.items():
        arm = Arm.parse(name)
        network = result['network']
        row = {'arm': name, 'description': result['description'], 'params': result['params'],
               'precision': precision_label(network.get('weight_bits'), network.get('act_bits')),
               'wall_minutes': (result['train_seconds'] + result['eval_seconds'] + result['final_eval_seconds']) / 60,
               'seconds_per_iter': result['seconds_per_iter'], 'final': result['final'], 'sets': {}}
        twin = None if arm.is_teacher or arm.is_twin else _twin_result(results, arm)
        for set_name in set_names:
            psnr = result['final'][set_name]['psnr']
            entry = {'flattening': flattening(result['curve'], set_name)}
            if twin:
                entry['gap_to_twin_db'] = psnr - twin['final'][set_name]['psnr']
            floor = floors.get(arm.design, {}).get(set_name) if not arm.is_teacher and not arm.is_twin else None
            if floor:
                entry['gain_over_scratch_db'] = psnr - floor['mean']
                entry['noise_floor_db'] = floor['half_spread']
                entry['scratch_seeds'] = floor['seeds']
                entry['iters_to_scratch_final'] = iterations_to_reach(result['curve']['iters'],
                                                                      result['curve'][set_name]['psnr'],
                                                                      floor['curve_final_mean'])
            row['sets'][set_name] = entry
        if with_energy and (study.out / name / CHECKPOINT).is_file():
            row['energy'] = arm_energy(study, name, result)
        rows.append(row)
    return {'protocol': study.protocol.to_dict(), 'noise_floor': floors, 'rows': rows}


def precision_label(weight_bits, act_bits) -> str:
    """``'fp32'``, ``'W8A8'``, ``'W4'`` ...: the bits of a network's weights and analog activations."""
    if weight_bits is None and act_bits is None:
        return 'fp32'
    return (f'W{weight_bits}' if weight_bits else 'Wfp32') + (f'A{act_bits}' if act_bits else '')


def energy_cells(energy: dict) -> list[str]:
    """Compute, total gpu, total neuromorphic of a cached energy record, in µJ."""
    return [f'{value * 1e-6:.1f} µJ' for value in energy_measures(energy).values()]


def markdown_table(summary: dict) -> str:
    set_names = [Path(d).name for d in summary['protocol']['val_dirs']]
    header = ['arm', 'params'] + [f'{s} PSNR / SSIM' for s in set_names] + \
        ['gap to twin', 'gain over scratch', 'iters to scratch final', 'last-25% gain (lr)', 'precision'] + \
        [f'{measure} / 256²' for measure in ENERGY_MEASURES] + ['wall']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    first = set_names[0]
    for row in summary['rows']:
        sets = row['sets']
        cells = [row['arm'], f'{row["params"]:,}']
        cells += [f'{row["final"][s]["psnr"]:.2f} / {row["final"][s]["ssim"]:.3f}' for s in set_names]
        cells.append(' / '.join(f'{sets[s]["gap_to_twin_db"]:+.2f}' for s in set_names)
                     if 'gap_to_twin_db' in sets[first] else '-')
        cells.append(' / '.join(f'{sets[s]["gain_over_scratch_db"]:+.2f} ± {sets[s]["noise_floor_db"]:.2f}'
                                for s in set_names) if 'gain_over_scratch_db' in sets[first] else '-')
        cells.append(str(sets[first].get('iters_to_scratch_final') or '-')
                     if 'gain_over_scratch_db' in sets[first] else '-')
        flat = sets[first]['flattening']
        lr_fraction = flat['lr_fraction_there']
        cells.append(f'{flat["late_gain_db"]:+.2f} dB ({lr_fraction:.0%})' if lr_fraction is not None else '-')
        cells.append(row.get('precision', '-'))
        cells += energy_cells(row['energy']) if 'energy' in row else ['-'] * len(ENERGY_MEASURES)
        cells.append(f'{row["wall_minutes"]:.0f} min')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot(study: Study, path: str | Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    results = study.finished()
    set_names = [Path(d).name for d in study.protocol.val_dirs]
    figure, axes = plt.subplots(1, len(set_names), figsize=(6.5 * len(set_names), 4.5), squeeze=False)
    for axis, set_name in zip(axes[0], set_names):
        for name, result in results.items():
            curve = result['curve']
            style = ':' if result['recipe'] == 'twin' or name == 'teacher' else '-'
            axis.plot(curve['iters'], curve[set_name]['psnr'], style, marker='.', markersize=3, label=name)
        images = study.protocol.val_images or 'all'
        axis.set(title=f'{set_name} ({images} images per point)', xlabel='iteration', ylabel='PSNR (dB)')
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, ncol=2)
    protocol = study.protocol
    figure.suptitle(f'gray denoising sigma {protocol.sigma:g}, batch {protocol.batch} x {protocol.crop}², '
                    f'lr {protocol.lr:g} cosine to {protocol.lr_floor:g}x; dotted: ReLU twins and the teacher',
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(study: Study, with_energy: bool = True) -> str:
    """study.json, study.md and study.png in the study folder; returns the markdown table."""
    summary = summarise(study, with_energy)
    if not summary['rows']:
        return 'no arm has finished yet'
    table = markdown_table(summary)
    (study.out / 'study.json').write_text(json.dumps(summary, indent=1))
    (study.out / 'study.md').write_text(table + '\n')
    plot(study, study.out / 'study.png')
    return table

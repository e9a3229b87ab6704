"""The report of a Pareto sweep: ``pareto.md`` (table), ``pareto.json`` (summary), ``pareto.png`` (curves)."""
import json
from pathlib import Path

from basicsr_snn.analysis import format_energy
from basicsr_snn.benchmarks.pareto import ENERGY_MEASURES, ParetoSweep


def markdown_table(summary: dict) -> str:
    sets = [Path(folder).name for folder in summary['sets']]
    measures = list(ENERGY_MEASURES)
    header = (['point'] + [f'{name} PSNR / SSIM' for name in sets] + ['firing rate']
              + [f'{measure} / image' for measure in measures] + ['on front'])
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    rows = [(name, point) for name, point in summary['references'].items()] + list(summary['points'].items())
    for name, point in rows:
        scores = [f'{point["scores"][s]["psnr"]:.2f} / {point["scores"][s]["ssim"]:.3f}' for s in sets]
        rate = '-' if point['firing_rate'] is None else f'{point["firing_rate"]:.3f}'
        energies = [format_energy(point['energy_pj'][measure]) for measure in measures]
        fronts = [measure for measure in measures if name in summary['fronts'][measure]]
        label = f'**{name}** (reference)' if point['kind'] != 'student' else name
        lines.append('| ' + ' | '.join([label] + scores + [rate] + energies + [', '.join(fronts) or '-']) + ' |')
    target = summary['target']
    if target is not None:
        cheap = ', '.join(f'{name} ({loss:.2f} dB under base)' for name, loss in target['points_under_limit'].items())
        limit = format_energy(target['compute_limit_pj'])
        lines += ['', f'Points at or below 1/10 of the twin\'s compute energy ({limit}): '
                      f'{cheap or "none"}; within 0.3 dB of base: {"yes" if target["met"] else "no"}.']
    return '\n'.join(lines)


def plot(summary: dict, path: str | Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    measures = list(ENERGY_MEASURES)
    first_set = Path(summary['sets'][0]).name
    figure, axes = plt.subplots(1, len(measures), figsize=(5.2 * len(measures), 4.4), sharey=True)
    for axis, measure in zip(axes, measures):
        points = summary['points']
        axis.scatter([p['energy_pj'][measure] * 1e-6 for p in points.values()], [p['psnr'] for p in points.values()],
                     color='tab:blue', label='spiking variants')
        for name, point in points.items():
            axis.annotate(name, (point['energy_pj'][measure] * 1e-6, point['psnr']), fontsize=7,
                          xytext=(3, 3), textcoords='offset points')
        front = summary['fronts'][measure]
        axis.plot([points[n]['energy_pj'][measure] * 1e-6 for n in front], [points[n]['psnr'] for n in front],
                  color='tab:blue', linestyle='--', label='Pareto front')
        for (name, point), marker in zip(summary['references'].items(), ('s', 'D')):
            axis.scatter([point['energy_pj'][measure] * 1e-6], [point['psnr']], marker=marker, color='tab:red',
                         label=name)
        axis.set_xscale('log')
        axis.set_xlabel(f'{measure} energy per image (µJ, log)')
        axis.set_title(measure, fontsize=9)
        axis.grid(alpha=0.3, which='both')
    axes[0].set_ylabel(f'PSNR on {first_set} (dB)')
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(sweep: ParetoSweep) -> str:
    """Write pareto.json / .md / .png into the sweep's folder; return the table."""
    summary = sweep.summary()
    (sweep.out / 'pareto.json').write_text(json.dumps(summary, indent=1))
    table = markdown_table(summary)
    (sweep.out / 'pareto.md').write_text(table + '\n')
    if summary['points']:
        plot(summary, sweep.out / 'pareto.png')
    return table

"""Plot a BasicSR experiment's training curves: losses, validation PSNR, firing rates.

Reads ``experiments/<name>/train_*.log`` (BasicSR's message-logger and validation lines, plus the
teacher PSNR and firing-rate lines of SNNModel / DistillSNNModel) or the tensorboard events in
``tb_logger/<name>``; see ``basicsr_snn.benchmarks.training_logs`` for what is read.

    python scripts/plot_training.py --exp experiments/distill_denoise
    python scripts/plot_training.py --exp experiments/distill_denoise --source tb --out curves.png --json curves.json

Panels without data are left out: losses (log scale), validation PSNR per dataset (the teacher's
level dotted in the same colour), firing rate (training batches and per validation set).
"""
import argparse
import json
from pathlib import Path

from basicsr_snn.benchmarks.training_logs import read_experiment_scalars


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--exp', required=True, help='BasicSR experiment folder, e.g. experiments/NAME')
    parser.add_argument('--source', default='auto', choices=('auto', 'log', 'tb'),
                        help='train_*.log, tensorboard events, or the logs when present (default)')
    parser.add_argument('--tb-dir', help='tensorboard event folder (default: <exp>/../../tb_logger/<name>)')
    parser.add_argument('--out', help='PNG path (default: <exp>/training_curves.png)')
    parser.add_argument('--json', help='also write the scalars read, {tag: [iterations, values]}, here')
    return parser.parse_args(argv)


def panels(scalars):
    """[(title, y label, log scale, [(tag, label, style)])] for the panels that have data."""
    losses = [(tag, tag.split('/', 1)[1], '-') for tag in sorted(scalars) if tag.startswith('losses/')]
    psnr = []
    for tag in sorted(scalars):
        parts = tag.split('/')
        if parts[0] == 'metrics' and len(parts) == 3 and parts[2] == 'psnr':
            psnr.append((tag, parts[1], 'o-'))
            teacher = f'metrics/{parts[1]}/teacher_psnr'
            if teacher in scalars:
                psnr.append((teacher, f'{parts[1]} teacher', ':'))
    rates = [('firing_rate', 'training batches', '-')] if 'firing_rate' in scalars else []
    rates += [(tag, tag.split('/')[1], 'o-') for tag in sorted(scalars)
              if tag.startswith('firing_rate/') and tag.endswith('/mean')]
    positive_losses = all(value > 0 for tag, _, _ in losses for value in scalars[tag][1])
    candidates = [('losses', 'loss', positive_losses, losses), ('validation PSNR', 'PSNR (dB)', False, psnr),
                  ('firing rate', 'spikes per neuron per step', False, rates)]
    return [panel for panel in candidates if panel[3]]


def plot(scalars, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    chosen = panels(scalars)
    if not chosen:
        raise ValueError(f'nothing to plot: no loss, PSNR or firing-rate scalars among {sorted(scalars)}')
    figure, axes = plt.subplots(1, len(chosen), figsize=(4.6 * len(chosen), 3.6), squeeze=False)
    for axis, (panel_title, ylabel, log_scale, lines) in zip(axes[0], chosen):
        colours = {}
        for tag, label, style in lines:
            iterations, values = scalars[tag]
            dataset = label.split(' ')[0]
            if style == ':':  # the teacher is scored once: a level, not a curve
                axis.axhline(values[-1], linestyle=style, color=colours.get(dataset), label=label)
                continue
            line, = axis.plot(iterations, values, style, markersize=3, label=label)
            colours.setdefault(dataset, line.get_color())
        axis.set(title=panel_title, xlabel='iteration', ylabel=ylabel)
        if log_scale:
            axis.set_yscale('log')
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return [panel[0] for panel in chosen]


def main(argv=None):
    args = parse_args(argv)
    experiment = Path(args.exp)
    if not experiment.is_dir():
        raise FileNotFoundError(f'--exp: {experiment} is not a folder')
    scalars, source = read_experiment_scalars(experiment, args.source, args.tb_dir)
    out = Path(args.out) if args.out else experiment / 'training_curves.png'
    out.parent.mkdir(parents=True, exist_ok=True)
    first_source = Path(source.split(', ')[0])
    drawn = plot(scalars, out, f'{experiment.name} (from {first_source.parent.name}/{first_source.name})')
    if args.json:
        Path(args.json).write_text(json.dumps({tag: [list(i), list(v)] for tag, (i, v) in scalars.items()}, indent=1))
    print(f'{out}: {", ".join(drawn)} from {source}')


if __name__ == '__main__':
    main()

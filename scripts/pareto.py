"""The energy-quality curve: fine-tuned variants of a trained spiking student, PSNR against energy.

Starts from a student of a gap study (``scripts/bench_distill.py``; its arms are trained first if
missing) and fine-tunes each variant for the same budget: other time steps (``T1``, ``T2``), a
firing-rate budget (``rate0.1``: ``train.rate_opt.loss_weight`` 0.1 at ``--rate-target``), other
thresholds (``vth0.3``), the multi-level neuron with D spikes per step (``D4``: ``neuron: ilif``,
``spike_levels: 4``), or combinations (``T2+rate0.1``, ``T1+D4``); ``base`` fine-tunes the unchanged student.
Each variant is scored on the study's final sets and costed per image, compute-only and with
memory traffic (gpu and neuromorphic assumptions); the teacher and the ReLU twin are reference
points. One cached result per variant: a rerun skips finished ones.

    python scripts/pareto.py --study runs/gap_study                     # -> runs/gap_study/pareto/
    python scripts/pareto.py --study runs/gap_study --variants base T1 rate1 --iters 300
    python scripts/pareto.py --quick --out /tmp/pareto_quick             # trains a tiny study first
"""
import argparse
import time
from dataclasses import fields
from pathlib import Path

import torch

import basicsr_snn  # noqa: F401  (registers the plugin)
from basicsr_snn.benchmarks.pareto import DEFAULT_VARIANTS, ParetoSweep, SweepSettings, Variant
from basicsr_snn.benchmarks.pareto_report import write_report
from basicsr_snn.benchmarks.study import QUICK, Study, StudyProtocol, study_data_folders
from basicsr_snn.cli import user_errors_as_one_line
from basicsr_snn.utils.console import route_basicsr_log

QUICK_ITERS = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--study', help='gap study folder holding the student (required without --quick)')
    parser.add_argument('--out', help='sweep folder (default: <study>/pareto)')
    parser.add_argument('--quick', action='store_true',
                        help=f'train a tiny study on the demo set under <out>/study and fine-tune {QUICK_ITERS} '
                             'iterations per variant')
    parser.add_argument('--variants', nargs='+', default=list(DEFAULT_VARIANTS),
                        help=f'variants, in order (default: {" ".join(DEFAULT_VARIANTS)})')
    parser.add_argument('--report', action='store_true', help='only summarise the finished variants')
    defaults = {f.name: f.default for f in fields(SweepSettings)}
    for key in defaults:
        parser.add_argument(f'--{key.replace("_", "-")}', type=type(defaults[key]), default=None,
                            help=f'default {defaults[key]}')
    parser.add_argument('--debug', action='store_true', help='show the full traceback of an error')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    args = parser.parse_args(argv)
    if not args.quick and not args.study:
        parser.error('give --study DIR (a gap study of scripts/bench_distill.py) or --quick')
    if args.quick and not args.out:
        parser.error('--quick needs --out DIR')
    for name in args.variants:
        try:
            Variant.parse(name)
        except ValueError as error:
            parser.error(str(error))
    return args


def open_study(args, log):
    if args.quick:
        out = Path(args.out) / 'study'
        train_dir, val_dirs = study_data_folders(out, quick=True)
        protocol = StudyProtocol(train_dir=str(train_dir), val_dirs=tuple(map(str, val_dirs)), **QUICK)
        return Study(protocol, out, log=log)
    return Study(StudyProtocol.of_study(args.study), args.study, log=log)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(args.study) / 'pareto'
    out.mkdir(parents=True, exist_ok=True)
    route_basicsr_log(out / 'pareto.log')
    log = lambda message: print(message, flush=True)  # noqa: E731
    settings = {key: getattr(args, key) for key in (f.name for f in fields(SweepSettings))
                if getattr(args, key) is not None}
    if args.quick:
        settings.setdefault('iters', QUICK_ITERS)
    try:
        sweep = ParetoSweep(open_study(args, log), SweepSettings(**settings), out, log=log)
    except ValueError as error:
        raise SystemExit(f'pareto.py: {error}') from None
    started = time.time()
    if not args.report:
        with user_errors_as_one_line('pareto.py', args.debug, results_folder=out):
            sweep.run(args.variants)
    print(write_report(sweep))
    print(f'{(time.time() - started) / 60:.1f} min; results in {out} (pareto.md, pareto.json, pareto.png)')
    return sweep


if __name__ == '__main__':
    main()

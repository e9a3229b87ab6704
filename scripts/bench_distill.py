"""The ANN-to-SNN gap study: student designs, their ReLU twins, distillation recipes, seeds.

Each arm (``teacher`` or ``<design>.<recipe>.s<seed>``, see ``basicsr_snn/benchmarks/arms.py``)
trains once and writes ``<out>/<arm>/result.json`` and ``net_g.pth``; a rerun skips finished
arms and resumes an interrupted one from its last checkpoint (every validation, and on SIGTERM,
SIGINT or SIGUSR1, which stop the run with exit code 75), with the same batches. Two
processes may share one ``--out`` (each takes the arms nobody holds). At the end, or with
``--report``, the finished arms are summarised in ``study.md``, ``study.json`` and ``study.png``.

    python scripts/bench_distill.py --out runs/gap_study                        # every default arm
    python scripts/bench_distill.py --out runs/gap_study --arms membrane.scratch.s0 membrane.twin.s0
    python scripts/bench_distill.py --out runs/int8_study --arms matched-precision  # W8A8 twin, W8 / W4 students
    python scripts/bench_distill.py --out runs/gap_study --report               # the table so far
    python scripts/bench_distill.py --quick --out /tmp/gap_quick                # every arm, tiny budget
"""
import argparse
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

import basicsr_snn  # noqa: F401  (registers the plugin)
from basicsr_snn.benchmarks.arms import ARM_GROUPS, DEFAULT_ARMS, DESIGNS, RECIPES, TEACHERS, Arm
from basicsr_snn.benchmarks.study import QUICK, Study, StudyProtocol, study_data_folders
from basicsr_snn.benchmarks.study_report import write_report
from basicsr_snn.cli import user_errors_as_one_line
from basicsr_snn.utils.console import route_basicsr_log

BUDGET_KEYS = ('iters', 'teacher_iters', 'batch', 'crop', 'lr', 'teacher_lr', 'lr_floor', 'val_every', 'val_images',
               'final_images', 'sigma')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='study folder (one subfolder per arm)')
    parser.add_argument('--arms', nargs='+', default=list(DEFAULT_ARMS),
                        help=f'arms to run, in order, or a group of arms ({", ".join(ARM_GROUPS)}; default: all '
                             f'{len(DEFAULT_ARMS)} of the gap study); designs: {sorted(DESIGNS)}, '
                             f'recipes: {sorted(RECIPES)}')
    parser.add_argument('--report', action='store_true', help='only summarise the finished arms')
    parser.add_argument('--no-energy', action='store_true', help='leave energy out of the report')
    parser.add_argument('--quick', action='store_true', help=f'tiny budget on the demo set: {QUICK}')
    defaults = {f.name: f.default for f in fields(StudyProtocol) if f.name in BUDGET_KEYS}
    budget = parser.add_argument_group('protocol (stored in <out>/protocol.json; a rerun must match it)')
    for key in BUDGET_KEYS:
        budget.add_argument(f'--{key.replace("_", "-")}', type=type(defaults[key]), default=None,
                            help=f'default {defaults[key]}' + (f' (--quick: {QUICK[key]})' if key in QUICK else ''))
    budget.add_argument('--train-dir', help='clean training images (default: <datasets>/Train400)')
    budget.add_argument('--val-dirs', nargs='+', help='validation folders (default: <datasets>/Set12 <datasets>/BSD68)')
    budget.add_argument('--teacher', default=StudyProtocol.teacher, choices=sorted(TEACHERS),
                        help=f'teacher architecture (default {StudyProtocol.teacher})')
    budget.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--debug', action='store_true', help='show the full traceback of an error')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default 1: on a shared CPU one thread is far faster than two)')
    args = parser.parse_args(argv)
    args.arms = [arm for name in args.arms for arm in ARM_GROUPS.get(name, (name, ))]
    for name in args.arms:
        try:
            Arm.parse(name)
        except ValueError as error:
            parser.error(str(error))
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    return args


def protocol_from(args):
    try:
        train_dir, val_dirs = study_data_folders(args.out, args.quick, args.train_dir, args.val_dirs)
    except ValueError as error:
        raise SystemExit(f'bench_distill.py: {error}') from None
    protocol = StudyProtocol(train_dir=str(train_dir), val_dirs=tuple(map(str, val_dirs)), teacher=args.teacher,
                             device=args.device)
    budget = dict(QUICK) if args.quick else {}
    budget.update({key: getattr(args, key) for key in BUDGET_KEYS if getattr(args, key) is not None})
    return replace(protocol, **budget)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    route_basicsr_log(out / 'bench_distill.log')
    try:
        study = Study(protocol_from(args), out, log=lambda message: print(message, flush=True))
    except ValueError as error:
        raise SystemExit(f'bench_distill.py: {error}') from None
    started = time.time()
    if not args.report:
        with user_errors_as_one_line('bench_distill.py', args.debug, results_folder=out):
            study.run(args.arms)
    print(write_report(study, with_energy=not args.no_energy))
    print(f'{(time.time() - started) / 60:.1f} min; results in {out} (study.md, study.json, study.png)')
    return study


if __name__ == '__main__':
    main()

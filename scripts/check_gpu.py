"""One command for a user with a CUDA GPU: does the GPU path do what the CPU tests show?

    python scripts/check_gpu.py                          # every check, writes results/check_gpu.json
    python scripts/check_gpu.py --only neurons training  # some sections
    python scripts/check_gpu.py --device cpu             # the same checks on the CPU (what the tests run)

A few minutes on one GPU. Sections, each a list of rows of the printed table and of the JSON report
(``passed`` per row: true, false, or null for a skipped row, with the reason):

1. ``neurons``: spikingjelly's neurons as SpikerIR builds them (LIF, PLIF, IF, and the multi-level
   I-LIF) on the device, fed fp32, bf16 and fp16 inputs at T = 1 and T = 4, against spikingjelly's
   float32 torch reference on the CPU, same inputs: spikes equal (a stated fraction may differ in half
   precision), gradients close; each row names the kernel spikingjelly chose (``cuda``, ``triton`` or
   ``torch-reference``) (:mod:`basicsr_snn.benchmarks.gpu_check`);
2. ``training``: a few training steps of every SpikerIR preset and of every teacher (Restormer, PromptIR,
   AdaIR at their authors' configurations) in fp32, bf16 and fp16 as ``train.amp`` runs them, at
   36 x 36 (no power of two: cuFFT's fp16 refuses those): finite losses that fall;
3. ``entry_point``: ``SNNModel`` and ``DistillSNNModel`` trained and validated through
   ``basicsr_snn.train`` on the demo's recipes under ``train.amp`` / ``val.amp`` fp32, bf16 and fp16,
   each against the same run on the CPU (same seed): every logged ``l_pix`` and the final PSNR within
   stated tolerances (``tolerance``, ``psnr_tolerance_db`` in the row;
   :mod:`basicsr_snn.benchmarks.entry_point_checks`);
4. ``torchrun``: a distillation under ``torchrun --nproc_per_node=1`` with NCCL, and with 2 processes
   where two GPUs exist;
5. ``stop_and_resume``: SIGTERM stops a run with its checkpoint, ``--auto_resume`` finishes it;
6. ``speed``: the table of ``scripts/bench_speed.py --device cuda`` (``--quick``: tiny sizes); not a
   pass/fail check unless it fails to run.

bf16 rows are skipped on a GPU without bf16 (before Ampere), where ``train.amp: bf16`` is refused.
Without CUDA (and ``--device cuda``) it says so in one line and exits 0. Exit code 0 only when every
check that ran passed, else 1.
"""
import argparse
import json
import platform
import sys
import tempfile
import traceback
from pathlib import Path

import torch

SECTIONS = ('neurons', 'training', 'entry_point', 'torchrun', 'stop_and_resume', 'speed')
MODELS = ('SNNModel', 'DistillSNNModel')


def guarded(row_of, **labels):
    """``row_of()``, or a failed row holding the error, so one broken check does not hide the others."""
    try:
        return row_of()
    except Exception as error:  # a GPU check reports every failure it meets
        return dict(labels, passed=False, error=f'{type(error).__name__}: {error}',
                    traceback=traceback.format_exc(limit=5))


def bf16_missing(device):
    """Why bf16 cannot run on ``device`` (None: it can)."""
    if device == 'cuda' and not torch.cuda.is_bf16_supported(including_emulation=False):
        return f'skipped: {torch.cuda.get_device_name()} has no bf16 (Ampere or newer needed)'
    return None


def dtypes_with_skips(device, labels):
    """(dtype, None) for each dtype the device runs, (dtype, skipped row) for the others."""
    from basicsr_snn.benchmarks import gpu_check
    for dtype in gpu_check.DTYPES:
        missing = bf16_missing(device) if dtype == 'bf16' else None
        yield dtype, (dict(labels, dtype=dtype, passed=None, skipped=missing) if missing else None)


def neuron_rows(device, work_dir, args):
    from basicsr_snn.benchmarks import gpu_check
    for name, build in gpu_check.neuron_builders().items():
        for steps in gpu_check.TIME_STEPS:
            labels = dict(check='neuron', neuron=name, T=steps)
            for dtype, skipped in dtypes_with_skips(device, labels):
                if isinstance(build, str):
                    yield dict(labels, dtype=dtype, passed=None, skipped=build)
                else:
                    yield skipped or guarded(lambda: gpu_check.neuron_check(name, build, device, dtype=dtype,
                                                                             shape=(steps, 2, 4, 8, 8)),
                                             **labels, dtype=dtype)


def training_rows(device, work_dir, args):
    from basicsr_snn.benchmarks import gpu_check
    for label, build, channels in gpu_check.training_networks():
        labels = dict(check='training', network=label)
        for dtype, skipped in dtypes_with_skips(device, labels):
            yield skipped or guarded(lambda: gpu_check.training_step_check(label, build, channels, device, dtype),
                                     **labels, dtype=dtype)


def entry_point_rows(device, work_dir, args):
    from basicsr_snn.benchmarks import entry_point_checks
    for model_type in MODELS:
        labels = dict(check='entry_point', model=model_type)
        for dtype, skipped in dtypes_with_skips(device, labels):
            if skipped:
                yield skipped
                continue

            def compared(model_type=model_type, dtype=dtype):
                reference = entry_point_checks.run(work_dir / f'{model_type}_{dtype}_reference', 'run', model_type,
                                                   'cpu', dtype, args.iterations)
                return entry_point_checks.entry_point_check(work_dir, model_type, dtype, device, reference,
                                                            args.iterations)

            yield guarded(compared, **labels, dtype=dtype)


def torchrun_rows(device, work_dir, args):
    from basicsr_snn.benchmarks import entry_point_checks
    devices = torch.cuda.device_count() if device == 'cuda' else 2
    for processes in (1, 2):
        labels = dict(check='torchrun', processes=processes)
        if processes > devices:
            yield dict(labels, passed=None, skipped=f'skipped: {devices} GPU (needs {processes})')
        else:
            yield guarded(lambda: entry_point_checks.torchrun_check(work_dir, device, processes), **labels)


def stop_and_resume_rows(device, work_dir, args):
    from basicsr_snn.benchmarks import entry_point_checks
    yield guarded(lambda: entry_point_checks.stop_and_resume_check(work_dir, device), check='stop_and_resume')


def speed_rows(device, work_dir, args):
    from basicsr_snn.benchmarks import speed
    table = guarded(lambda: speed.run(args.quick, device), check='speed')
    yield dict(check='speed', passed=table.get('passed', True), table=table) if 'error' not in table else table


ROWS = {'neurons': neuron_rows, 'training': training_rows, 'entry_point': entry_point_rows,
        'torchrun': torchrun_rows, 'stop_and_resume': stop_and_resume_rows, 'speed': speed_rows}


def describe(row):
    """One table line of a row."""
    verdict = {True: 'ok  ', False: 'FAIL', None: 'skip'}[row['passed']]
    check = row['check']
    if check == 'neuron':
        what = f'neuron {row["neuron"]:<5} T={row["T"]} {row.get("dtype", ""):<4}'
        if 'spikes' in row:
            grads = [row['grad_input'], *row['grad_params'].values()]
            what += (f' kernel {row["kernel"]}; spikes: {row["spikes"]["mismatches"]} of {row["spikes"]["elements"]}'
                     f' differ; largest gradient difference {max(g.get("max_abs_diff") or 0 for g in grads):.2e}')
    elif check == 'training':
        what = f'train {row["network"]:<22} {row["dtype"]}'
        if 'losses' in row:
            what += (f' loss {row["losses"][0]:.4f} -> {row["losses"][-1]:.4f}'
                     f' ({row["overflow_steps"]} fp16 overflow steps skipped)')
    elif check == 'entry_point':
        what = f'entry point {row["model"]:<15} {row["dtype"]}'
        if 'curve' in row:
            difference = row['curve']['max_rel_diff']
            what += (f' exit {row["returncode"]}, largest loss difference from the CPU run '
                     f'{"n/a" if difference is None else f"{difference:.2%}"} (tolerance {row["tolerance"]:.0%}), '
                     f'PSNR {row["psnr"]} against {row["reference_psnr"]} dB (tolerance {row["psnr_tolerance_db"]} dB)')
    elif check == 'torchrun':
        what = f'torchrun {row["processes"]} x {row.get("backend", "")}'
        if 'returncode' in row:
            what += f' exit {row["returncode"]}, {row["logged_losses"]} losses logged, checkpoint {row["checkpoint"]}'
    elif check == 'stop_and_resume':
        what = 'SIGTERM stop and resume'
        if 'stopped_at' in row:
            what += (f': stopped at iteration {row["stopped_at"]} (exit {row["stopped_returncode"]}), resumed from '
                     f'{row["resumed_from"]} (exit {row["resumed_returncode"]})')
    else:
        what = check
    detail = row.get('error') or row.get('skipped') or ''
    return f'{verdict} {what} {detail}'.rstrip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='results/check_gpu.json', help='the JSON report [results/check_gpu.json]')
    parser.add_argument('--quick', action='store_true', help='the speed table at tiny sizes')
    parser.add_argument('--device', default='cuda', choices=('cuda', 'cpu'),
                        help='where the checks run [cuda]; cpu: the same checks on the CPU')
    parser.add_argument('--only', nargs='+', choices=SECTIONS, default=SECTIONS, help='the sections to run [all]')
    parser.add_argument('--iterations', type=int, default=8, help='iterations of each entry-point run [8]')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('check_gpu.py: no CUDA device (torch.cuda.is_available() is False); nothing to check.')
        return 0
    # only now: without a GPU the answer comes at once
    import basicsr_snn  # noqa: F401  (registers the archs and models)
    if args.device == 'cuda':
        report = dict(device=torch.cuda.get_device_name(), gpus=torch.cuda.device_count(), cuda=torch.version.cuda,
                      bf16=torch.cuda.is_bf16_supported(including_emulation=False))
    else:
        report = dict(device=f'cpu ({platform.processor() or platform.machine()})', gpus=0, cuda=None, bf16=True)
    report.update(torch=torch.__version__, python=platform.python_version(), sections=list(args.only))
    print(f'{report["device"]} (x{report["gpus"]}), torch {report["torch"]}, CUDA {report["cuda"]}', flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as work_dir:
        for section in args.only:
            for row in ROWS[section](args.device, Path(work_dir), args):
                rows.append(row)
                print(describe(row), flush=True)
    failed = [row for row in rows if row['passed'] is False]
    report.update(checks=rows, failed=len(failed), passed=not failed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
    print(f'\n{len(failed)} check(s) failed' if failed else '\nevery check passed', f'(report: {out})')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

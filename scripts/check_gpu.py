"""One command for a user with a CUDA GPU: does the GPU path do what the CPU tests show?

    python scripts/check_gpu.py                      # everything, writes results/check_gpu.json
    python scripts/check_gpu.py --quick --out gpu.json   # the speed table at tiny sizes

Checks, each a row of the printed table and of the JSON (``passed`` per row and overall):

1. spikingjelly's CUDA neuron kernels (LIF, PLIF, IF, and the multi-level ``ilif`` neuron where this
   checkout has it) against spikingjelly's torch reference on the CPU, same inputs: spikes equal,
   gradients close (:mod:`basicsr_snn.benchmarks.gpu_check`);
2. a few training steps of every SpikerIR preset and of the teachers (Restormer, and PromptIR /
   AdaIR where registered) in fp32, bf16 and fp16, as ``train.amp`` runs them: finite losses that fall;
3. the speed table of ``scripts/bench_speed.py --device cuda`` (``speed`` in the JSON);
4. where two GPUs exist, a 2-process NCCL ``torchrun`` distillation of a few iterations.

Without CUDA it says so in one line and exits 0. Exit code 1 when a check failed.
"""
import argparse
import json
import platform
import sys
import tempfile
import traceback
from pathlib import Path

import torch


def guarded(row_of, **labels):
    """``row_of()``, or a failed row holding the error, so one broken check does not hide the others."""
    try:
        return row_of()
    except Exception as error:  # a GPU check reports every failure it meets
        return dict(labels, passed=False, error=f'{type(error).__name__}: {error}',
                    traceback=traceback.format_exc(limit=5))


def neuron_rows(device):
    from basicsr_snn.benchmarks import gpu_check
    rows = []
    for name, build in gpu_check.neuron_builders().items():
        if isinstance(build, str):
            rows.append(dict(check='neuron', neuron=name, passed=None, skipped=build))
        else:
            rows.append(guarded(lambda: gpu_check.neuron_check(name, build, device), check='neuron', neuron=name))
        print(describe(rows[-1]), flush=True)
    return rows


def training_rows(device):
    from basicsr_snn.benchmarks import gpu_check
    rows = []
    for label, build, channels in gpu_check.training_networks():
        for dtype in gpu_check.DTYPES:
            rows.append(guarded(lambda: gpu_check.training_step_check(label, build, channels, device, dtype),
                                check='training', network=label, dtype=dtype))
            print(describe(rows[-1]), flush=True)
    return rows


def describe(row):
    """One table line of a row."""
    verdict = {True: 'ok  ', False: 'FAIL', None: 'skip'}[row['passed']]
    if row['check'] == 'neuron':
        what = f'neuron {row["neuron"]:<5}'
        if 'spikes' in row:
            grads = [row['grad_input'], *row['grad_params'].values()]
            what += (f' spikes: {row["spikes"]["mismatches"]} of {row["spikes"]["elements"]} differ; '
                     f'largest gradient difference {max(g["max_abs_diff"] or 0 for g in grads):.2e}')
    elif row['check'] == 'training':
        what = f'train {row["network"]:<22} {row["dtype"]}'
        if 'losses' in row:
            what += (f' loss {row["losses"][0]:.4f} -> {row["losses"][-1]:.4f}'
                     f' ({row["overflow_steps"]} fp16 overflow steps skipped)')
    else:
        what = f'torchrun 2 x {row.get("backend", "nccl")}'
        if 'returncode' in row:
            what += f' exit {row["returncode"]}, {row["logged_losses"]} losses logged, checkpoint {row["checkpoint"]}'
    detail = row.get('error') or row.get('skipped') or ''
    return f'{verdict} {what} {detail}'.rstrip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='results/check_gpu.json', help='the JSON report [results/check_gpu.json]')
    parser.add_argument('--quick', action='store_true', help='the speed table at tiny sizes')
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print('check_gpu.py: no CUDA device (torch.cuda.is_available() is False); nothing to check.')
        return 0
    # only now: without a GPU the answer comes at once
    import basicsr_snn  # noqa: F401  (registers the archs and models)
    from basicsr_snn.benchmarks import gpu_check, speed
    device = torch.device('cuda')
    report = dict(device=torch.cuda.get_device_name(device), gpus=torch.cuda.device_count(), torch=torch.__version__,
                  cuda=torch.version.cuda, python=platform.python_version())
    print(f'{report["device"]} (x{report["gpus"]}), torch {report["torch"]}, CUDA {report["cuda"]}', flush=True)
    report['neurons'] = neuron_rows(device)
    report['training'] = training_rows(device)
    print('\nspeed (scripts/bench_speed.py --device cuda):', flush=True)
    report['speed'] = guarded(lambda: speed.run(args.quick, 'cuda'), check='speed')
    if torch.cuda.device_count() >= 2:
        with tempfile.TemporaryDirectory() as work_dir:
            report['torchrun'] = guarded(lambda: gpu_check.torchrun_distillation_check(Path(work_dir), 'nccl'),
                                         check='torchrun', backend='nccl')
    else:
        report['torchrun'] = dict(check='torchrun', passed=None, skipped='skipped: one GPU (needs 2)')
    print(describe(report['torchrun']), flush=True)
    rows = [*report['neurons'], *report['training'], report['torchrun']]
    speed_failed = report['speed'].get('passed') is False
    failed = [row for row in rows if row['passed'] is False]
    report['passed'] = not failed and not speed_failed
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
    print(f'\n{len(failed) + speed_failed} check(s) failed' if not report['passed'] else '\nevery check passed',
          f'(report: {out})')
    return 0 if report['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())

"""The checks of ``scripts/check_gpu.py`` that run what users run: ``basicsr_snn.train`` on option files.

Every run is the demo's recipe (``options/demo/train_snn_demo.yml`` for ``SNNModel``,
``options/demo/distill_demo.yml`` for ``DistillSNNModel``, with an untrained teacher) cut to a few
iterations on a tiny gray set written by :func:`write_gray_images`, every iteration logged, in a
process of its own: ``python -m basicsr_snn.train -opt ...`` or, for the distributed checks,
``python -m torch.distributed.run --nproc_per_node=N -m basicsr_snn.train ... --launcher pytorch``.

* :func:`entry_point_check`: a run on the device under ``train.amp`` and ``val.amp`` (fp32, bf16,
  fp16) against the same run on the CPU, same seed (so the same weights, crops and noise): every
  logged ``l_pix`` within :data:`CURVE_RTOL` of the CPU's, relative, and the final validation's PSNR
  (a distillation also measures its teacher first) within :data:`PSNR_TOLERANCE_DB`.
* :func:`torchrun_check`: ``torchrun`` with N processes (NCCL on GPUs, gloo on the CPU) exits 0, logs
  finite losses and writes the final checkpoint.
* :func:`stop_and_resume_check`: SIGTERM after the first logged iteration stops the run with
  :data:`~basicsr_snn.cli.STOPPED_EXIT_CODE` and the checkpoint of the iteration it names;
  ``--auto_resume`` continues from that iteration to the end, with finite losses.

The device is a parameter: on the CPU the same checks run (the tests do), against a CPU reference.
"""
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from basicsr_snn.cli import STOPPED_EXIT_CODE

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_OPTIONS = {'SNNModel': 'train_snn_demo.yml', 'DistillSNNModel': 'distill_demo.yml'}
#: the largest relative difference of a logged l_pix from the CPU run's, per train.amp dtype
CURVE_RTOL = {'fp32': 0.02, 'bf16': 0.1, 'fp16': 0.05}
#: the largest difference of the final validation's PSNR from the CPU run's, in dB, per val.amp dtype
PSNR_TOLERANCE_DB = {'fp32': 0.05, 'bf16': 0.5, 'fp16': 0.2}
PSNR_LINE = re.compile(r'# psnr: ([-+.\deEnaif]+)')
LOG_LINE = re.compile(r'iter:\s*([\d,]+), lr:.*?l_pix: ([-+.\deEnaif]+)')


def write_gray_images(folder: Path, count: int = 4, size: int = 48) -> Path:
    """``count`` smooth gray PNGs (a clean training set for the noise dataset)."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for index in range(count):
        image = 127 + 100 * np.sin((xx + 5 * index) / 6.0) * np.cos(yy / 7.0)
        cv2.imwrite(str(folder / f'{index:03d}.png'), image.astype(np.uint8))
    return folder


def run_options(work_dir: Path, name: str, model_type: str, device: str, dtype: str = 'fp32', iterations: int = 8,
                backend: str | None = None, seed: int | None = None) -> Path:
    """The demo's options for ``model_type`` cut to ``iterations`` on a tiny set, validated at the end, on ``device``
    ('cuda' or 'cpu') under ``train.amp`` and ``val.amp: dtype`` (``seed``: another ``manual_seed`` than the
    demo's); returns the option file (in ``work_dir``)."""
    options = yaml.safe_load((REPO_ROOT / 'options' / 'demo' / DEMO_OPTIONS[model_type]).read_text())
    options.update(name=name, num_gpu=1 if device == 'cuda' else 0)
    if seed is not None:
        options['manual_seed'] = seed
    if backend is not None:
        options['dist_params'] = {'backend': backend}
    images = str(write_gray_images(work_dir / 'data'))
    options['datasets']['train'].update(dataroot_gt=images, gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0,
                                        dataset_enlarge_ratio=1)
    options['datasets']['val'].update(dataroot_gt=images)
    amp = None if dtype == 'fp32' else {'dtype': dtype}
    options['val'].update(val_freq=iterations, amp=amp, metrics={'psnr': options['val']['metrics']['psnr']})
    if model_type == 'DistillSNNModel':
        options['path'].update(pretrain_network_t=None)
        options['train']['distill']['allow_random_teacher'] = True
    options['train'].update(total_iter=iterations, amp=amp)
    options['train']['scheduler'].update(periods=[iterations])
    options['logger'] = {'print_freq': 1, 'save_checkpoint_freq': iterations, 'use_tb_logger': False}
    path = work_dir / f'{name}.yml'
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return path


def train_command(options_path: Path, processes: int | None = None) -> list[str]:
    """``python -m basicsr_snn.train -opt ...``, under ``torchrun --nproc_per_node=processes`` if given."""
    if processes is None:
        return [sys.executable, '-m', 'basicsr_snn.train', '-opt', str(options_path)]
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={processes}', '-m',
            'basicsr_snn.train', '-opt', str(options_path), '--launcher', 'pytorch']


def environment(device: str) -> dict:
    """The environment of a run: no GPU visible for a CPU run."""
    hidden = {'CUDA_VISIBLE_DEVICES': ''} if device == 'cpu' else {}
    return dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', **hidden)


def logged_losses(experiment: Path) -> dict[int, float]:
    """{iteration: l_pix} of every logged iteration in the experiment's training logs (a resumed run's last)."""
    losses = {}
    for log in sorted(experiment.glob('train_*.log')):
        for iteration, value in LOG_LINE.findall(log.read_text()):
            losses[int(iteration.replace(',', ''))] = float(value)
    return losses


def run(work_dir: Path, name: str, model_type: str, device: str, dtype: str = 'fp32', iterations: int = 8,
        processes: int | None = None, backend: str | None = None, seed: int | None = None, timeout: int = 600) -> dict:
    """One training run; ``{'returncode', 'losses' ({iteration: l_pix}), 'psnr' (of the last validation, None
    without), 'checkpoint' (bool), 'output_tail', 'seconds'}``."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    options = run_options(work_dir, name, model_type, device, dtype, iterations, backend, seed)
    started = time.perf_counter()
    result = subprocess.run(train_command(options, processes), cwd=work_dir, env=environment(device),
                            capture_output=True, text=True, timeout=timeout)
    experiment = work_dir / 'experiments' / name
    validations = PSNR_LINE.findall('\n'.join(log.read_text() for log in sorted(experiment.glob('train_*.log'))))
    return dict(returncode=result.returncode, losses=logged_losses(experiment),
                psnr=float(validations[-1]) if validations else None,
                checkpoint=(experiment / 'models' / 'net_g_latest.pth').is_file(),
                output_tail=(result.stdout + result.stderr)[-3000:], seconds=time.perf_counter() - started)


def compare_curves(reference: dict, candidate: dict, rtol: float) -> dict:
    """Logged losses ``{iteration: value}``: the same iterations, each finite and within ``rtol`` of the
    reference, relative. ``{'passed', 'max_rel_diff', 'problem'?}``."""
    if not reference or sorted(candidate) != sorted(reference):
        return dict(passed=False, max_rel_diff=None,
                    problem=f'logged iterations {sorted(candidate)} against {sorted(reference)}')
    differences = [abs(candidate[i] - reference[i]) / max(abs(reference[i]), 1e-12) for i in reference]
    finite = all(math.isfinite(candidate[i]) and math.isfinite(reference[i]) for i in reference)
    largest = max(differences) if finite else math.inf
    return dict(passed=finite and largest <= rtol, max_rel_diff=largest)


def entry_point_check(work_dir: Path, model_type: str, dtype: str, device: str, reference: dict,
                      iterations: int = 8) -> dict:
    """``model_type`` trained through the entry point on ``device`` under ``dtype`` against ``reference``, the
    same run's result on the CPU (:func:`run`); passes when both exit 0 and the curves agree (:data:`CURVE_RTOL`)."""
    candidate = run(Path(work_dir) / f'{model_type}_{dtype}_{device}', 'run', model_type, device, dtype, iterations)
    row = dict(check='entry_point', model=model_type, dtype=dtype, device=device, reference='cpu',
               tolerance=CURVE_RTOL[dtype], returncode=candidate['returncode'],
               reference_returncode=reference['returncode'], losses=list(candidate['losses'].values()),
               reference_losses=list(reference['losses'].values()), seconds=candidate['seconds'])
    row['curve'] = compare_curves(reference['losses'], candidate['losses'], CURVE_RTOL[dtype])
    row.update(psnr=candidate['psnr'], reference_psnr=reference['psnr'], psnr_tolerance_db=PSNR_TOLERANCE_DB[dtype])
    row['psnr_agrees'] = (candidate['psnr'] is not None and reference['psnr'] is not None
                          and abs(candidate['psnr'] - reference['psnr']) <= PSNR_TOLERANCE_DB[dtype])
    row['passed'] = (candidate['returncode'] == 0 == reference['returncode'] and row['curve']['passed']
                     and row['psnr_agrees'])
    if candidate['returncode'] != 0 or reference['returncode'] != 0:
        row['output_tail'] = candidate['output_tail'] if candidate['returncode'] else reference['output_tail']
    return row


def torchrun_check(work_dir: Path, device: str, processes: int, model_type: str = 'DistillSNNModel',
                   iterations: int = 4, timeout: int = 600) -> dict:
    """``torchrun --nproc_per_node=processes`` of ``model_type`` (NCCL on 'cuda', gloo on the CPU): exits 0,
    every iteration logged and finite, the final checkpoint written."""
    backend = 'nccl' if device == 'cuda' else 'gloo'
    result = run(Path(work_dir) / f'torchrun_{processes}', 'run', model_type, device, 'fp32', iterations,
                 processes=processes, backend=backend, timeout=timeout)
    losses = result['losses']
    row = dict(check='torchrun', model=model_type, backend=backend, processes=processes, iterations=iterations,
               returncode=result['returncode'], logged_losses=len(losses), checkpoint=result['checkpoint'],
               losses_finite=len(losses) == iterations and all(map(math.isfinite, losses.values())),
               seconds=result['seconds'])
    row['passed'] = result['returncode'] == 0 and row['losses_finite'] and result['checkpoint']
    if not row['passed']:
        row['output_tail'] = result['output_tail']
    return row


def stop_and_resume_check(work_dir: Path, device: str, iterations: int = 200, timeout: int = 600) -> dict:
    """SIGTERM after the first logged iteration of an ``SNNModel`` run, then ``--auto_resume`` to the end."""
    work_dir = Path(work_dir) / 'stop_and_resume'
    work_dir.mkdir(parents=True, exist_ok=True)
    options = run_options(work_dir, 'run', 'SNNModel', device, 'fp32', iterations)
    started = time.perf_counter()
    process = subprocess.Popen(train_command(options), cwd=work_dir, env=environment(device), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if re.search(r'iter:\s+1, lr', line):
                process.send_signal(signal.SIGTERM)
                break
        lines.extend(process.stdout)
        stopped_code = process.wait(timeout=timeout)
    finally:
        process.kill()
        process.wait()
    stopped_output = ''.join(lines)
    stop = re.search(r'Stopped by SIGTERM: checkpoint of iteration (\d+): (\S+);', stopped_output)
    stopped_at = int(stop[1]) if stop else None
    resumed = subprocess.run([*train_command(options), '--auto_resume'], cwd=work_dir, env=environment(device),
                             capture_output=True, text=True, timeout=timeout)
    experiment = work_dir / 'experiments' / 'run'
    starts = re.findall(r'Start training from epoch: \d+, iter: (\d+)\n',
                        '\n'.join(log.read_text() for log in sorted(experiment.glob('train_*.log'))))
    losses = logged_losses(experiment)
    row = dict(check='stop_and_resume', device=device, iterations=iterations, stopped_returncode=stopped_code,
               stopped_at=stopped_at, checkpoint_saved=bool(stop) and Path(stop[2]).is_file(),
               resumed_from=int(starts[-1]) if len(starts) >= 2 else None, resumed_returncode=resumed.returncode,
               losses_finite=len(losses) == iterations and all(map(math.isfinite, losses.values())),
               final_checkpoint=(experiment / 'models' / 'net_g_latest.pth').is_file(),
               seconds=time.perf_counter() - started)
    row['passed'] = (stopped_code == STOPPED_EXIT_CODE and row['checkpoint_saved'] and stopped_at is not None
                     and stopped_at < iterations and row['resumed_from'] == stopped_at and resumed.returncode == 0
                     and row['losses_finite'] and row['final_checkpoint'])
    if not row['passed']:
        row['output_tail'] = (stopped_output + resumed.stdout + resumed.stderr)[-3000:]
    return row

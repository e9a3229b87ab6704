"""Helpers for tests that run the real train/test entry points in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO_ROOT / 'basicsr_snn' / 'train.py'
TEST_SCRIPT = REPO_ROOT / 'basicsr_snn' / 'test.py'


def write_paired_folder(root, count=4, size=24, channels=1, seed=0):
    """Write `count` (noisy, clean) PNG pairs under root/{lq,gt} with matching names."""
    rng = np.random.default_rng(seed)
    for sub in ('lq', 'gt'):
        (Path(root) / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        yy, xx = np.mgrid[0:size, 0:size]
        clean = (127 + 100 * np.sin((xx + 3 * i) / 4.0) * np.cos(yy / 5.0)).astype(np.float32)
        clean = np.repeat(clean[..., None], channels, axis=2)
        noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255)
        cv2.imwrite(str(Path(root) / 'gt' / f'{i:03d}.png'), clean.astype(np.uint8))
        cv2.imwrite(str(Path(root) / 'lq' / f'{i:03d}.png'), noisy.astype(np.uint8))
    return Path(root)


def write_options(path, options):
    Path(path).write_text(yaml.safe_dump(options, sort_keys=False))
    return Path(path)


def run_entry_point(script, opt_path, *extra_args, cwd, launcher=None, nproc=1, timeout=600):
    """Run train.py/test.py (under torchrun when nproc > 1) and return the CompletedProcess."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    if nproc > 1:
        command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
                   str(script), '-opt', str(opt_path)]
    else:
        command = [sys.executable, str(script), '-opt', str(opt_path)]
    if launcher:
        command += ['--launcher', launcher]
    command += list(extra_args)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f'{" ".join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}'
    return result


def read_train_log(experiment_dir):
    logs = sorted(Path(experiment_dir).glob('train_*.log'))
    assert logs, f'no train log in {experiment_dir}'
    return '\n'.join(log.read_text() for log in logs)

"""The main job, end to end and offline: demo data -> ANN teacher -> distilled SpikerIR -> test -> table.

    python scripts/run_demo.py                      # everything, about 5-10 minutes on 2 CPU cores
    python scripts/run_demo.py --teacher my.pth     # distil from a teacher checkpoint you already have

Each stage is the ordinary command a user would type (printed before it runs), with the option files
in ``options/demo/``; experiments/ and results/ land in the current directory. The teacher stage is
skipped when its checkpoint already exists (delete ``experiments/demo_teacher`` to retrain it).
"""
import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_OPTIONS = REPO_ROOT / 'options' / 'demo'
TEACHER_CKPT = Path('experiments/demo_teacher/models/net_g_latest.pth')
STUDENT_CKPT = Path('experiments/demo_distill/models/net_g_latest.pth')


def run_stage(title, script, opt_file, *force_yml):
    command = [sys.executable, '-m', f'basicsr_snn.{script}', '-opt', str(opt_file)]
    if force_yml:
        command += ['--force_yml', *force_yml]
    print(f'\n=== {title}\n$ {" ".join(command)}', flush=True)
    start = time.time()
    subprocess.run(command, check=True)
    print(f'=== {title}: done in {time.time() - start:.0f} s', flush=True)


def read_test_result(name):
    """PSNR, SSIM and parameter count from the newest log of ``results/<name>``."""
    log = sorted(Path('results', name).glob('test_*.log'))[-1].read_text()
    params = int(re.search(r'with parameters: ([\d,]+)', log).group(1).replace(',', ''))
    psnr = float(re.findall(r'# psnr: ([\d.]+)', log)[-1])
    ssim = float(re.findall(r'# ssim: ([\d.]+)', log)[-1])
    return params, psnr, ssim


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--teacher', type=Path, help='teacher checkpoint (Restormer demo preset, key "params"); '
                        'default: train one briefly, or reuse experiments/demo_teacher')
    args = parser.parse_args(argv)
    start = time.time()

    from basicsr_snn.data.demo_data import make_demo_dataset
    print('=== Demo data from scikit-image photos', flush=True)
    make_demo_dataset('datasets/demo', log=print)

    teacher = args.teacher or TEACHER_CKPT
    if args.teacher is None and not TEACHER_CKPT.is_file():
        run_stage('Teacher: a small Restormer, trained briefly', 'train', DEMO_OPTIONS / 'train_teacher_demo.yml')
    if not Path(teacher).is_file():
        raise FileNotFoundError(f'--teacher: no such checkpoint {teacher}')

    run_stage('Student: SpikerIR distilled from the teacher (H-KD)', 'train', DEMO_OPTIONS / 'distill_demo.yml',
              f'path:pretrain_network_t={teacher}')
    run_stage('Test: the teacher', 'test', DEMO_OPTIONS / 'test_teacher_demo.yml',
              f'path:pretrain_network_g={teacher}')
    run_stage('Test: the distilled student', 'test', DEMO_OPTIONS / 'test_student_demo.yml',
              f'path:pretrain_network_g={STUDENT_CKPT}')

    rows = [('teacher (Restormer, ANN)', *read_test_result('demo_test_teacher')),
            ('student (SpikerIR, SNN)', *read_test_result('demo_test_student'))]
    print('\nGray denoising, sigma 25, demo validation set (datasets/demo/val/gray):')
    print(f'{"network":<26}{"parameters":>12}{"PSNR (dB)":>11}{"SSIM":>8}')
    for name, params, psnr, ssim in rows:
        print(f'{name:<26}{params:>12,}{psnr:>11.2f}{ssim:>8.4f}')
    print(f'\nDemo finished in {time.time() - start:.0f} s. Results: results/demo_test_*; '
          'checkpoints: experiments/demo_*.')


if __name__ == '__main__':
    main()

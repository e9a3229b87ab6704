"""The main job, end to end and offline: demo data -> ANN teacher -> distilled SpikerIR -> test -> table.

    python scripts/run_demo.py                      # everything: about 2 min on 2 quiet CPU cores (2.6 the first time)
    python scripts/run_demo.py --teacher my.pth     # distil from a teacher checkpoint you already have

Each stage is the ordinary command a user would type (printed before it runs), with the option files
in ``options/demo/``; experiments/ and results/ land in the current directory. The teacher stage is
skipped when its checkpoint already exists (delete ``experiments/demo_teacher`` to retrain it).
The console shows each stage's progress and a summary line; the option dumps and network printouts
go to the stages' log files only. ``results/demo_comparison/<image>.png`` puts the noisy input, the
teacher's and the student's restorations and the clean image side by side, each named above it on the
image (the first three with their PSNR against the clean image).
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_OPTIONS = REPO_ROOT / 'options' / 'demo'
TEACHER_CKPT = Path('experiments/demo_teacher/models/net_g_latest.pth')
STUDENT_CKPT = Path('experiments/demo_distill/models/net_g_latest.pth')


def run_stage(title, script, opt_file, run_dir, *force_yml):
    """Run one stage quietly (progress only on the console) and print its summary line."""
    command = [sys.executable, '-m', f'basicsr_snn.{script}', '-opt', str(opt_file)]
    if force_yml:
        command += ['--force_yml', *force_yml]
    print(f'\n=== {title}\n$ {" ".join(command)}', flush=True)
    start = time.time()
    subprocess.run(command, check=True, env=dict(os.environ, BASICSR_SNN_QUIET='1'))
    log = newest_log(run_dir)
    params, psnr, ssim = read_log_result(log)
    print(f'=== {title}: done in {time.time() - start:.0f} s; {params:,} parameters, last validation '
          f'{psnr:.2f} dB / SSIM {ssim:.4f}; full log: {log}', flush=True)


def newest_log(run_dir):
    return sorted(Path(run_dir).glob('*_*.log'), key=lambda path: path.stat().st_mtime)[-1]


def read_log_result(log):
    """Parameter count and the last PSNR and SSIM of a BasicSR log."""
    text = Path(log).read_text()
    params = int(re.search(r'with parameters: ([\d,]+)', text).group(1).replace(',', ''))
    psnr = float(re.findall(r'# psnr: ([\d.]+)', text)[-1])
    ssim = float(re.findall(r'# ssim: ([\d.]+)', text)[-1])
    return params, psnr, ssim


def write_comparisons(out=Path('results/demo_comparison')):
    """noisy | teacher | student | clean strips of every demo validation image, each panel named (with its
    PSNR against the clean image) on the image; returns their paths."""
    import yaml
    from basicsr.data import build_dataset
    from basicsr.utils import tensor2img

    from basicsr_snn.evaluation import WHOLE_IMAGE_METRICS, score_image
    from basicsr_snn.utils.comparison_strip import comparison_strip

    dataset_opt = dict(yaml.safe_load((DEMO_OPTIONS / 'test_student_demo.yml').read_text())['datasets']['test_1'],
                       phase='test')
    dataset = build_dataset(dataset_opt)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    psnr_only = {'psnr': WHOLE_IMAGE_METRICS['psnr']}
    for index in range(len(dataset)):
        sample = dataset[index]
        name = Path(sample['gt_path']).stem
        folders = [Path('results', run, 'visualization', dataset_opt['name'])
                   for run in ('demo_test_teacher', 'demo_test_student')]
        teacher, student = [cv2.imread(str(next(folder.glob(f'{name}_*.png'))), cv2.IMREAD_GRAYSCALE)
                            for folder in folders]
        noisy, clean = tensor2img(sample['lq']).squeeze(), tensor2img(sample['gt']).squeeze()

        def named(label, image):
            return f'{label} {score_image(image, clean, psnr_only)["psnr"]:.2f} dB', image

        strip = comparison_strip([named('noisy', noisy), named('teacher', teacher), named('student', student),
                                  ('clean', clean)])
        path = out / f'{name}.png'
        cv2.imwrite(str(path), strip)
        written.append(path)
    return written


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
        run_stage('Teacher: a small Restormer, trained briefly', 'train', DEMO_OPTIONS / 'train_teacher_demo.yml',
                  'experiments/demo_teacher')
    if not Path(teacher).is_file():
        raise SystemExit(f'run_demo.py: --teacher {teacher}: no such checkpoint')

    run_stage('Student: SpikerIR distilled from the teacher (H-KD)', 'train', DEMO_OPTIONS / 'distill_demo.yml',
              'experiments/demo_distill', f'path:pretrain_network_t={teacher}')
    run_stage('Test: the teacher', 'test', DEMO_OPTIONS / 'test_teacher_demo.yml', 'results/demo_test_teacher',
              f'path:pretrain_network_g={teacher}')
    run_stage('Test: the distilled student', 'test', DEMO_OPTIONS / 'test_student_demo.yml',
              'results/demo_test_student', f'path:pretrain_network_g={STUDENT_CKPT}')
    comparisons = write_comparisons()

    rows = [('teacher (Restormer, ANN)', *read_log_result(newest_log('results/demo_test_teacher'))),
            ('student (SpikerIR, SNN)', *read_log_result(newest_log('results/demo_test_student')))]
    print('\nGray denoising, sigma 25, demo validation set (datasets/demo/val/gray):')
    print(f'{"network":<26}{"parameters":>12}{"PSNR (dB)":>11}{"SSIM":>8}')
    for name, params, psnr, ssim in rows:
        print(f'{name:<26}{params:>12,}{psnr:>11.2f}{ssim:>8.4f}')
    print(f'\nnoisy | teacher | student | clean: {len(comparisons)} images in {comparisons[0].parent}/')
    print(f'\nDemo finished in {time.time() - start:.0f} s. Results: results/demo_test_*; '
          'checkpoints: experiments/demo_*.')


if __name__ == '__main__':
    main()

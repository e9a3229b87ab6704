"""Does H-KD make the spiking student converge faster and end better? A controlled CPU-scale run.

Protocol (gray Gaussian denoising, sigma 25 by default):

1. Teacher: the ``network_g`` of ``--teacher-opt`` (default ``options/train_teacher_denoise.yml``
   with Restormer's ``--teacher-preset small``), trained with BasicSR's SRModel for
   ``--teacher-iters``, or loaded from ``--teacher-ckpt``.
2. Scratch: the SpikerIR student of ``options/train_snn_denoise.yml`` (SNNModel, task loss
   L1 + 0.1 FFT), ``--student-iters`` iterations.
3. H-KD: the same student, same initial weights, same batches in the same order, same budget,
   with ``options/distill_denoise.yml``'s DistillSNNModel (hints ``--hints``, weight ``--gamma``
   under ``--schedule``) distilling the teacher of step 1.

Every ``--val-every`` iterations both students are scored (PSNR/SSIM, 8-bit, no border crop) on
``--val-images`` evenly spaced images of each ``--val-dirs`` set (the curves; 0: all images); at
the end the teacher and both students are scored on ``--final-images`` of each set (0: all).
Training crops come from ``--train-dir`` (default ``<datasets>/Train400``), validation from
``<datasets>/Set12`` and ``<datasets>/BSD68`` (see ``basicsr_snn.data.paths.shared_datasets_root``).
Differences to the option files, for the short budget: EMA off (a 0.999 average would still hold
most of the initial weights), the cosine schedule spans the budget, no data-loader workers.
``--scratch-from`` reuses the scratch run of an earlier result with the same protocol, to try
distillation variants (``--hints``, ``--gamma``, ``--schedule``) at half the cost.

Outputs in ``--out``: ``bench_distill.json`` (protocol, per-run curves, training losses, final
PSNR/SSIM, parameters, compute energy per image, and per validation set: on the curves, the
speedup = iterations scratch needs to reach its final PSNR / iterations H-KD needs to reach it,
and the gain at equal budget; on the final images, the three PSNRs, the gain and the gaps to the
teacher), ``bench_distill.png`` (PSNR vs iteration: H-KD, scratch and the teacher's level),
``bench_distill.log`` (BasicSR's log), checkpoints.

    # default budget: 35 minutes on 2 CPU cores shared with other jobs (load average 2-6)
    python scripts/bench_distill.py --teacher-lr 1e-3 --out /tmp/bench_distill_full
    python scripts/bench_distill.py --quick --out /tmp/bench_quick      # under a minute: the demo set
    python scripts/bench_distill.py --teacher-ckpt /tmp/bench_distill_full/teacher/models/net_g_latest.pth \\
        --scratch-from /tmp/bench_distill_full/bench_distill.json --gamma 1.2 --out /tmp/bench_gamma1.2
    python scripts/bench_distill.py --teacher-ckpt net_g_latest.pth --student-iters 20000 \\
        --val-images 0 --final-images 0 --crop 128 --batch 16 --device cuda --out runs/hkd  # GPU scale
"""
import argparse
import copy
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import basicsr_snn  # noqa: E402,F401  (host-stack fixes before basicsr, registers archs/models/data)
from basicsr.data import build_dataset  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from basicsr.utils import get_root_logger, set_random_seed  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

from basicsr_snn.analysis import analyse_energy  # noqa: E402
from basicsr_snn.archs.restormer_arch import RESTORMER_PRESETS  # noqa: E402
from basicsr_snn.benchmarks import SeededBatches, compare_curves, evaluate_model, evenly_spaced  # noqa: E402
from basicsr_snn.data.demo_data import make_demo_dataset  # noqa: E402
from basicsr_snn.data.paths import shared_datasets_root  # noqa: E402
from basicsr_snn.distill import SCHEDULE_TYPES  # noqa: E402

OPTIONS = REPO_ROOT / 'options'
TEACHER_OPT = OPTIONS / 'train_teacher_denoise.yml'
SCRATCH_OPT = OPTIONS / 'train_snn_denoise.yml'
DISTILL_OPT = OPTIONS / 'distill_denoise.yml'

# (student module, Restormer module) at each level of the two UNets
LEVEL_PAIRS = {
    'encoder1': 'encoder_level1', 'encoder2': 'encoder_level2', 'encoder3': 'encoder_level3', 'latent': 'latent',
    'decoder3': 'decoder_level3', 'decoder2': 'decoder_level2', 'decoder1': 'decoder_level1'
}
HINT_PRESETS = {
    'paper': None,  # the hints of distill_denoise.yml: the three decoder levels
    'finest': ('decoder1', ),
    'all-levels': tuple(LEVEL_PAIRS),
    'output': (),  # no feature hint: L1 to the teacher's output only
}
OUTPUT_TERM = {'loss': {'type': 'L1Loss', 'loss_weight': 1.0}, 'weight': 1.0}
# what a reused scratch run must share with the distillation it is compared to
SCRATCH_PROTOCOL_KEYS = ('sigma', 'train_dir', 'val_sets', 'student_iters', 'val_every', 'batch', 'crop', 'T', 'seed',
                         'student_lr', 'student_network')

# (default budget, --quick budget); the default takes about 45 minutes on 2 busy CPU cores
BUDGETS = {
    'teacher_iters': (500, 4),
    'student_iters': (400, 4),
    'val_every': (50, 2),
    'batch': (8, 2),
    'crop': (48, 32),
    'val_images': (4, 2),
    'final_images': (17, 3),
    'energy_images': (2, 1),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='output folder (JSON, PNG, log, checkpoints)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny budget on the scikit-image demo set (unless --train-dir / --val-dirs are given)')
    budget = parser.add_argument_group('budget (defaults: default budget / --quick)')
    for key, (full, quick) in BUDGETS.items():
        budget.add_argument(f'--{key.replace("_", "-")}', type=int, default=None, help=f'default {full} / {quick}')
    budget.add_argument('--T', type=int, default=None, help="student time steps (default: the option file's, 4)")
    parser.add_argument('--train-dir', help='clean training images (default: <datasets>/Train400)')
    parser.add_argument('--val-dirs', nargs='+', help='validation folders (default: <datasets>/Set12 <datasets>/BSD68)')
    parser.add_argument('--sigma', type=float, default=None, help="noise level, 0-255 (default: the option files', 25)")
    parser.add_argument('--teacher-opt', default=str(TEACHER_OPT), help='option file whose network_g is the teacher')
    parser.add_argument('--teacher-preset', default='small', choices=sorted(RESTORMER_PRESETS) + ['none'],
                        help="Restormer size replacing the option file's ('none': keep the file's network_g)")
    parser.add_argument('--teacher-ckpt', help='trained teacher checkpoint: skip the teacher training')
    parser.add_argument('--teacher-lr', type=float, help="teacher learning rate (default: the option file's)")
    parser.add_argument('--student-lr', type=float, help="student learning rate (default: the option files')")
    parser.add_argument('--hints', default='paper', choices=sorted(HINT_PRESETS) + [f'{p}+output' for p in HINT_PRESETS
                                                                                     if p != 'output'],
                        help='hint levels (teacher: Restormer module names); "+output" adds L1 to the teacher output')
    parser.add_argument('--gamma', type=float, default=None,
                        help="distillation weight (default: the option file's, 0.12)")
    parser.add_argument('--schedule', default=None, choices=SCHEDULE_TYPES,
                        help="gamma over training, decaying to 0 at the last iteration (default: the option file's)")
    parser.add_argument('--seed', type=int, default=None, help="weights and data seed (default: the option files')")
    parser.add_argument('--scratch-from', help='bench_distill.json of an earlier run with the same protocol: reuse its '
                                               'scratch run (to try distillation variants at half the cost)')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    args = parser.parse_args(argv)
    for key, (full, quick) in BUDGETS.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    for key in ('teacher_iters', 'student_iters', 'val_every', 'batch', 'crop'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1, got {getattr(args, key)}')
    if args.crop % 8:
        parser.error(f'--crop must be a multiple of 8 (both UNets down-sample three times), got {args.crop}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    return args


def load_options(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'option file {path} does not exist')
    return yaml.safe_load(path.read_text())


def data_folders(args, scratch_dir):
    """(train folder, [validation folders]); --quick without folders builds the demo set in scratch_dir."""
    if args.quick and not args.train_dir and not args.val_dirs:
        demo = make_demo_dataset(Path(scratch_dir) / 'demo', tile_size=64, val_size=64)
        return demo['train_gray'], [demo['val_gray']]
    root = shared_datasets_root()
    train_dir = Path(args.train_dir) if args.train_dir else root / 'Train400'
    val_dirs = [Path(d) for d in args.val_dirs] if args.val_dirs else [root / 'Set12', root / 'BSD68']
    for option, folder in [('--train-dir', train_dir)] + [('--val-dirs', d) for d in val_dirs]:
        if not folder.is_dir():
            raise FileNotFoundError(f'{option}: {folder} is not a folder (datasets root: {root}, '
                                    f'set BASICSR_SNN_DATASETS or pass {option})')
    return train_dir, val_dirs


def build_data(args, base_train_opt, train_dir, val_dirs, sigma):
    train_opt = dict(base_train_opt, name=train_dir.name, dataroot_gt=str(train_dir), gt_size=args.crop, sigma=sigma,
                     phase='train', io_backend={'type': 'disk'})
    train_set = build_dataset(train_opt)
    curve_loaders, final_loaders = {}, {}
    for folder in val_dirs:
        val_opt = {'name': folder.name, 'type': train_opt['type'], 'dataroot_gt': str(folder),
                   'color': train_opt['color'], 'sigma': sigma, 'phase': 'val', 'io_backend': {'type': 'disk'}}
        val_set = build_dataset(val_opt)
        for loaders, limit in ((curve_loaders, args.val_images), (final_loaders, args.final_images)):
            subset = Subset(val_set, evenly_spaced(len(val_set), limit))
            loaders[folder.name] = DataLoader(subset, batch_size=1, shuffle=False, num_workers=0)
    return train_set, curve_loaders, final_loaders


def model_options(base, name, args, out_dir, total_iter, lr=None):
    """A training option dict for build_model: the file's, with the benchmark's budget and paths."""
    opt = copy.deepcopy(base)
    opt.pop('datasets', None)  # batches come from SeededBatches
    run_dir = out_dir / name
    (run_dir / 'models').mkdir(parents=True, exist_ok=True)
    opt.update(name=name, is_train=True, dist=False, rank=0, world_size=1, num_gpu=int(args.device == 'cuda'),
               manual_seed=args.seed, logger={'print_freq': max(1, args.val_every // 5), 'use_tb_logger': False})
    opt['path'] = dict(opt.get('path') or {}, experiments_root=str(run_dir), models=str(run_dir / 'models'),
                       training_states=str(run_dir / 'training_states'), visualization=str(run_dir / 'visualization'),
                       pretrain_network_g=None, resume_state=None)
    train = opt['train']
    train.update(total_iter=total_iter, warmup_iter=-1, ema_decay=0)
    if lr is not None:
        train['optim_g']['lr'] = lr
    if train['scheduler']['type'] == 'CosineAnnealingRestartLR':
        train['scheduler'].update(periods=[total_iter], restart_weights=[1])
    return opt


def teacher_network(args):
    network = copy.deepcopy(load_options(args.teacher_opt)['network_g'])
    if args.teacher_preset != 'none':
        if network['type'] != 'Restormer':
            raise ValueError(f'--teacher-preset {args.teacher_preset} applies to Restormer, but {args.teacher_opt} '
                             f"has network_g.type {network['type']!r}; pass --teacher-preset none")
        network.update(copy.deepcopy(RESTORMER_PRESETS[args.teacher_preset]))
    return network


def checkpoint_param_key(path):
    """The key a BasicSR checkpoint keeps its weights under: EMA first, None for a bare state dict."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    return next((key for key in ('params_ema', 'params') if key in checkpoint), None)


def build_seeded(opt, seed):
    set_random_seed(seed)
    return build_model(opt)


def evaluate_all(model, loaders):
    return {name: evaluate_model(model, loader) for name, loader in loaders.items()}


def train_run(model, batches, val_loaders, val_every, label):
    """Train ``model`` on ``batches``, scoring it every ``val_every`` iterations and at the end."""
    total = len(batches)
    curve = {'iters': [], **{name: {'psnr': [], 'ssim': []} for name in val_loaders}}
    losses = {'iters': []}
    train_seconds = eval_seconds = 0.
    tic = time.time()
    for iteration, batch in enumerate(batches, 1):
        model.update_learning_rate(iteration, warmup_iter=-1)
        model.feed_data(batch)
        model.optimize_parameters(iteration)
        if iteration % model.opt['logger']['print_freq'] == 0:
            losses['iters'].append(iteration)
            for key, value in model.log_dict.items():
                losses.setdefault(key, []).append(float(value))
        if iteration % val_every == 0 or iteration == total:
            train_seconds += time.time() - tic
            tic = time.time()
            curve['iters'].append(iteration)
            scores = evaluate_all(model, val_loaders)
            for name, score in scores.items():
                curve[name]['psnr'].append(score['psnr'])
                curve[name]['ssim'].append(score['ssim'])
            eval_seconds += time.time() - tic
            print(f'[{label}] iter {iteration}/{total}: ' +
                  ', '.join(f'{name} {score["psnr"]:.2f} dB' for name, score in scores.items()) +
                  f' ({train_seconds / iteration:.2f} s/iter, {eval_seconds:.0f} s validating)', flush=True)
            tic = time.time()
    return {'curve': curve, 'losses': losses, 'train_seconds': train_seconds, 'seconds_per_iter': train_seconds / total,
            'eval_seconds': eval_seconds}


def final_scores(model, final_loaders, label):
    tic = time.time()
    final = evaluate_all(model, final_loaders)
    print(f'[{label}] final: ' + ', '.join(f'{name} {score["psnr"]:.2f} dB / {score["ssim"]:.4f} ({score["images"]} '
                                           f'images)' for name, score in final.items()) +
          f' ({time.time() - tic:.0f} s)', flush=True)
    return final


def train_teacher(args, out_dir, batches, curve_loaders, final_loaders):
    """Train (or load) the teacher; returns its network options, checkpoint, param key, model and scores."""
    network = teacher_network(args)
    opt = model_options(load_options(args.teacher_opt), 'teacher', args, out_dir, args.teacher_iters, args.teacher_lr)
    opt['network_g'] = copy.deepcopy(network)
    if args.teacher_ckpt:
        param_key = checkpoint_param_key(args.teacher_ckpt)
        opt['path'].update(pretrain_network_g=args.teacher_ckpt, param_key_g=param_key)
        opt['is_train'] = False
        model = build_model(opt)
        checkpoint = str(args.teacher_ckpt)
        result = {'source': checkpoint,
                  'curve_level': {name: score['psnr'] for name, score in evaluate_all(model, curve_loaders).items()}}
    else:
        param_key = 'params'
        model = build_seeded(opt, args.seed)
        result = train_run(model, batches, curve_loaders, val_every=len(batches), label='teacher')
        result['curve_level'] = {name: scores['psnr'][-1] for name, scores in result.pop('curve').items()
                                 if name != 'iters'}
        model.save_network(model.net_g, 'net_g', -1)
        result.update(source=f'trained here for {len(batches)} iterations', iters=len(batches))
        checkpoint = str(Path(opt['path']['models']) / 'net_g_latest.pth')
    result['final'] = final_scores(model, final_loaders, 'teacher')
    return network, checkpoint, param_key, model, result


def distill_settings(args, base_distill):
    preset, _, extra = args.hints.partition('+')
    settings = copy.deepcopy(base_distill)
    if HINT_PRESETS[preset] is not None:
        settings['hints'] = [{'name': student, 'student': student, 'teacher': LEVEL_PAIRS[student],
                              'loss': {'type': 'MSELoss', 'loss_weight': 1.0}, 'weight': 1.0}
                             for student in HINT_PRESETS[preset]]
    if preset == 'output' or extra == 'output':
        settings['output'] = copy.deepcopy(OUTPUT_TERM)
    schedule = dict(settings.get('schedule') or {})
    if args.gamma is not None:
        schedule['gamma'] = args.gamma
    if args.schedule is not None:
        schedule['type'] = args.schedule
    settings['schedule'] = schedule
    return settings


def energy_images(val_loaders, count, size=256):
    """The first ``count`` noisy images of the first validation set, center-cropped to at most size x size."""
    loader = next(iter(val_loaders.values()))
    images = []
    for data in loader:
        if len(images) == count:
            break
        lq = data['lq']
        height, width = min(size, lq.shape[-2]), min(size, lq.shape[-1])
        top, left = (lq.shape[-2] - height) // 2, (lq.shape[-1] - width) // 2
        images.append(lq[..., top:top + height, left:left + width])
    if len({tuple(image.shape) for image in images}) > 1:
        side = min(min(image.shape[-2:]) for image in images)
        images = [image[..., :side, :side] for image in images]
    return torch.cat(images)


def energy_summary(network, images, spiking):
    report = analyse_energy(network, images, spiking=spiking).to_dict()
    keys = ('image_size', 'num_images', 'time_steps', 'precision', 'params', 'macs', 'sops', 'energy_uj',
            'mean_firing_rate', 'mean_input_rate', 'note')
    return {key: report[key] for key in keys}


def parameter_count(network):
    return sum(p.numel() for p in network.parameters())


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    val_names = list(results['summary'])
    figure, axes = plt.subplots(1, len(val_names), figsize=(max(6, 5 * len(val_names)), 4), squeeze=False)
    for axis, name in zip(axes[0], val_names):
        for run, label, style in (('kd', f'H-KD ({results["protocol"]["hints"]})', 'o-'),
                                  ('scratch', 'scratch', 's--')):
            curve = results[run]['curve']
            axis.plot(curve['iters'], curve[name]['psnr'], style, markersize=3, label=label)
        axis.axhline(results['teacher']['curve_level'][name], color='k', linestyle=':', label='teacher')
        images = results['protocol']['val_sets'][name]['curve_images']
        axis.set(title=f'{name} ({images} images)', xlabel='iteration', ylabel='PSNR (dB)')
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    protocol = results['protocol']
    figure.suptitle(f'{protocol["student_network"]["type"]} student, H-KD vs scratch ({protocol["device"]} scale)\n'
                    f'gray denoising sigma {protocol["sigma"]:g}, batch {protocol["batch"]} x {protocol["crop"]}^2, '
                    f'T={protocol["T"]}, same init and batches', fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def route_basicsr_log(path):
    """BasicSR's INFO messages (network printouts, loading notes) go to a file, not the console."""
    logger = get_root_logger(log_level=logging.INFO, log_file=str(path))
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    route_basicsr_log(out_dir / 'bench_distill.log')
    started, load_at_start = time.time(), os.getloadavg()

    scratch_base, distill_base = load_options(SCRATCH_OPT), load_options(DISTILL_OPT)
    args.seed = scratch_base['manual_seed'] if args.seed is None else args.seed
    sigma = scratch_base['datasets']['train']['sigma'] if args.sigma is None else args.sigma
    student_network = copy.deepcopy(scratch_base['network_g'])
    if args.T is not None:
        student_network['T'] = args.T

    with tempfile.TemporaryDirectory(prefix='bench_distill_') as scratch_dir:
        train_dir, val_dirs = data_folders(args, scratch_dir)
        train_set, curve_loaders, final_loaders = build_data(args, scratch_base['datasets']['train'], train_dir,
                                                             val_dirs, sigma)
        protocol = {
            'command': shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv),
            'task': 'gray Gaussian denoising', 'sigma': sigma, 'train_dir': str(train_dir),
            'val_sets': {name: {'dir': str(folder), 'curve_images': len(curve_loaders[name].dataset),
                                'final_images': len(final_loaders[name].dataset),
                                'images_in_folder': len(final_loaders[name].dataset.dataset)}
                         for name, folder in zip(final_loaders, val_dirs)},
            'metric': 'PSNR / SSIM on 8-bit outputs, no border crop', 'teacher_iters': args.teacher_iters,
            'student_iters': args.student_iters, 'val_every': args.val_every, 'batch': args.batch, 'crop': args.crop,
            'T': student_network['T'], 'hints': args.hints, 'seed': args.seed, 'student_lr': args.student_lr,
            'device': args.device, 'torch_threads': torch.get_num_threads(), 'student_network': student_network,
            'identical_batches': 'one SeededBatches sequence for both students', 'quick': args.quick,
        }
        teacher_batches = SeededBatches(train_set, args.batch, args.teacher_iters, args.seed)
        student_batches = SeededBatches(train_set, args.batch, args.student_iters, args.seed)

        teacher_net_opt, teacher_ckpt, teacher_key, teacher_model, teacher = train_teacher(
            args, out_dir, teacher_batches, curve_loaders, final_loaders)
        images = energy_images(final_loaders, args.energy_images) if args.energy_images else None
        teacher.update(network=teacher_net_opt, params=parameter_count(teacher_model.net_g))
        if images is not None:
            teacher['energy'] = energy_summary(teacher_model.net_g, images, spiking=False)
        del teacher_model

        scratch_opt = model_options(scratch_base, 'scratch', args, out_dir, args.student_iters, args.student_lr)
        scratch_opt['network_g'] = copy.deepcopy(student_network)
        kd_opt = model_options(distill_base, 'kd', args, out_dir, args.student_iters, args.student_lr)
        kd_opt['network_g'] = copy.deepcopy(student_network)
        kd_opt['network_t'] = copy.deepcopy(teacher_net_opt)
        kd_opt['path'].update(pretrain_network_t=teacher_ckpt, param_key_t=teacher_key)
        kd_opt['train']['distill'] = distill_settings(args, kd_opt['train']['distill'])

        runs, initial_weights = {}, {}
        for name, opt in (('scratch', scratch_opt), ('kd', kd_opt)):
            model = build_seeded(opt, args.seed)
            student = model.get_bare_model(model.net_g)
            initial_weights[name] = {key: value.clone() for key, value in student.state_dict().items()}
            if name == 'scratch' and args.scratch_from:
                runs[name] = reused_scratch(args.scratch_from, protocol)
                continue
            runs[name] = train_run(model, student_batches, curve_loaders, args.val_every, name)
            runs[name]['final'] = final_scores(model, final_loaders, name)
            runs[name]['params'] = parameter_count(student)
            if name == 'kd':
                runs[name]['adapter_params'] = parameter_count(model.adapters)
                runs[name]['distill'] = opt['train']['distill']
            if images is not None:
                runs[name]['energy'] = energy_summary(student, images, spiking=True)
            model.save_network(model.net_g, 'net_g', -1)
            del model

    protocol['identical_student_init'] = all(torch.equal(value, initial_weights['kd'][key])
                                             for key, value in initial_weights['scratch'].items())
    results = {
        'protocol': protocol,
        'teacher': teacher,
        'scratch': runs['scratch'],
        'kd': runs['kd'],
        'summary': {name: summarise(name, teacher, runs) for name in final_loaders},
        'timing': {'total_seconds': time.time() - started, 'load_average_start': load_at_start,
                   'load_average_end': os.getloadavg(), 'cpu_count': os.cpu_count()},
    }
    (out_dir / 'bench_distill.json').write_text(json.dumps(results, indent=1))
    plot(results, out_dir / 'bench_distill.png')
    print_summary(results, out_dir)
    return results


def reused_scratch(path, protocol):
    """The scratch run of an earlier result file, after checking it ran the same protocol."""
    earlier = json.loads(Path(path).read_text())
    differing = [key for key in SCRATCH_PROTOCOL_KEYS if earlier['protocol'].get(key) != protocol[key]]
    if differing:
        raise ValueError(f'--scratch-from {path}: its scratch run had a different protocol ({", ".join(differing)}); '
                         f'rerun without --scratch-from or with the same flags')
    print(f'[scratch] reused from {path}', flush=True)
    return dict(earlier['scratch'], reused_from=str(path))


def summarise(name, teacher, runs):
    """Convergence figures on the curve images and the final comparison on the final images of one set."""
    scratch, kd = runs['scratch'], runs['kd']
    curves = compare_curves(scratch['curve']['iters'], scratch['curve'][name]['psnr'], kd['curve'][name]['psnr'],
                            teacher['curve_level'][name])
    final = {f'{run}_{metric}': scores['final'][name][metric]
             for run, scores in (('teacher', teacher), ('scratch', scratch), ('kd', kd)) for metric in ('psnr', 'ssim')}
    final.update(images=kd['final'][name]['images'], gain=final['kd_psnr'] - final['scratch_psnr'],
                 kd_minus_teacher=final['kd_psnr'] - final['teacher_psnr'],
                 scratch_minus_teacher=final['scratch_psnr'] - final['teacher_psnr'])
    return {'curves': curves, 'final': final}


def print_summary(results, out_dir):
    for name, figures in results['summary'].items():
        curves, final = figures['curves'], figures['final']
        reached = curves['kd_iters_to_scratch_final']
        speedup = (f'{curves["speedup"]:.2f}x (scratch at iteration {curves["scratch_iters_to_final"]}, H-KD at '
                   f'{reached})' if reached else 'not reached')
        print(f'{name} final ({final["images"]} images): teacher {final["teacher_psnr"]:.2f} dB | scratch '
              f'{final["scratch_psnr"]:.2f} | H-KD {final["kd_psnr"]:.2f} | gain {final["gain"]:+.2f} dB | '
              f'H-KD - teacher {final["kd_minus_teacher"]:+.2f} dB')
        print(f'{name} curves ({results["protocol"]["val_sets"][name]["curve_images"]} images): gain at equal budget '
              f'{curves["gain_at_equal_budget"]:+.2f} dB | speedup to scratch final: {speedup}')
    print(f'total {results["timing"]["total_seconds"] / 60:.1f} min; wrote {out_dir / "bench_distill.json"} and '
          f'{out_dir / "bench_distill.png"}')


if __name__ == '__main__':
    main()

"""Tiny spiking students, teachers and option dicts for the SNNModel / DistillSNNModel tests."""
import contextlib
import copy
import logging
from pathlib import Path

import torch

import basicsr_snn  # noqa: F401  (fixes basicsr's imports, registers the plugin)
from basicsr_snn.models.snn_model import build_network_from_options

# 3 channels: BasicSR's PairedImageDataset reads every PNG as color.
STUDENT = {'type': 'SpikerIR', 'in_ch': 3, 'out_ch': 3, 'dim': 4, 'T': 2, 'attention': False}
TEACHER = {'type': 'Restormer', 'inp_channels': 3, 'out_channels': 3, 'dim': 8, 'num_blocks': [1, 1, 1, 1],
           'num_refinement_blocks': 1, 'heads': [1, 2, 4, 8]}
HINTS = [{'name': 'dec1', 'student': 'decoder1', 'teacher': 'decoder_level1'},
         {'name': 'dec2', 'student': 'decoder2', 'teacher': 'decoder_level2'}]
PSNR = {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}


def write_teacher_checkpoint(path, network=TEACHER, seed=0, param_key='params'):
    """Save a randomly initialised teacher like a BasicSR checkpoint: {param_key: state_dict}."""
    torch.manual_seed(seed)
    torch.save({param_key: build_network_from_options({'network_t': copy.deepcopy(network)}, 'network_t').state_dict()},
               path)
    return Path(path)


def paired_dataset(data_root, name, phase='train', gt_size=16, augment=False, batch_size=2):
    paired = {'type': 'PairedImageDataset', 'name': name, 'dataroot_gt': str(Path(data_root) / 'gt'),
              'dataroot_lq': str(Path(data_root) / 'lq'), 'io_backend': {'type': 'disk'}, 'phase': phase, 'scale': 1}
    if phase == 'train':
        paired.update(gt_size=gt_size, use_hflip=augment, use_rot=augment, num_worker_per_gpu=0,
                      batch_size_per_gpu=batch_size, dataset_enlarge_ratio=1)
    return paired


def training_options(root, data_root, name, model_type='SNNModel', total_iter=4, teacher_path=None, **train):
    """Options for train.py (YAML) of a tiny run under ``root``; ``train`` entries override ``train``."""
    options = {
        'name': name, 'model_type': model_type, 'scale': 1, 'num_gpu': 0, 'manual_seed': 10,
        'datasets': {'train': paired_dataset(data_root, 'tiny_train'),
                     'val': paired_dataset(data_root, 'tiny_val', phase='val')},
        'network_g': copy.deepcopy(STUDENT),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 2e-3, 'weight_decay': 0.}, 'total_iter': total_iter,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10000], 'gamma': 0.5}, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, 'fft_opt': {'type': 'FFTLoss',
                                                                                   'loss_weight': 0.1}},
        'val': {'val_freq': total_iter, 'save_img': False, 'metrics': {'psnr': dict(PSNR)}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': total_iter, 'use_tb_logger': False},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }
    if model_type == 'DistillSNNModel':
        options['network_t'] = copy.deepcopy(TEACHER)
        options['path'].update(pretrain_network_t=str(teacher_path), strict_load_t=True)
        options['train']['distill'] = {'hints': copy.deepcopy(HINTS), 'schedule': {'type': 'constant', 'gamma': 0.12}}
    options['train'].update(train)
    return options


def in_process_options(root, options):
    """What BasicSR's parse_options adds for a single-process run rooted at ``root``."""
    options = copy.deepcopy(options)
    experiment = Path(root) / 'experiments' / options['name']
    options.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    options['path'].update(experiments_root=str(experiment), models=str(experiment / 'models'),
                           training_states=str(experiment / 'training_states'), log=str(experiment),
                           visualization=str(experiment / 'visualization'))
    for folder in ('models', 'training_states'):
        Path(options['path'][folder]).mkdir(parents=True, exist_ok=True)
    for phase, dataset in options['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
    return options


def build_model(options):
    """BasicSR's build_model (imported here, after basicsr_snn has fixed basicsr's imports)."""
    from basicsr.models import build_model as build
    return build(options)


def training_batch(options, size=2, start=0):
    """A fixed batch of the options' training dataset (images start .. start + size - 1)."""
    from basicsr.data import build_dataset
    dataset = build_dataset(options['datasets']['train'])
    return torch.utils.data.default_collate([dataset[(start + i) % len(dataset)] for i in range(size)])


def validation_loader(options):
    from basicsr.data import build_dataloader, build_dataset
    dataset_opt = options['datasets']['val']
    return build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=False)


@contextlib.contextmanager
def captured_log():
    """Collect the INFO messages of BasicSR's logger (which does not propagate) into a list."""
    logger = logging.getLogger('basicsr')
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)

"""Every option file in options/ builds its model and datasets (pointed at tiny data); derain trains."""
import re
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

import basicsr_snn  # noqa: F401
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.options import ordered_yaml, parse_options
from basicsr_snn.utils.training_option_checks import check_training_options
from pipeline_utils import REPO_ROOT, TRAIN_SCRIPT, read_train_log, run_entry_point

OPTION_FILES = sorted((REPO_ROOT / 'options').rglob('*.yml'))
IMAGE_SIZE = 136  # above every gt_size in options/
PAIR_NAMES = {  # (input name, target name) of one pair in each paired layout
    'derain': ('rain-{:03d}.png', 'norain-{:03d}.png'),
    'dehaze': ('{:04d}_0.8_0.2.png', '{:04d}.png'),
}


def load_options(path):
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def write_images(folder, names, seed):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8))


def point_datasets_at_tiny_data(options, root):
    """Replace every dataroot with two tiny images, named as the dataset's layout expects."""
    task = next((task for task in PAIR_NAMES if task in options['name']), None)
    lq_template, gt_template = PAIR_NAMES.get(task, ('{:03d}.png', '{:03d}.png'))
    for phase, dataset in options['datasets'].items():
        # a MixedDegradationDataset's folders are those of its sources
        for index, source in enumerate(dataset.get('sources', [dataset])):
            folder = root / options['name'] / phase / str(index)
            write_images(folder / 'gt', [gt_template.format(i) for i in (1, 2)], seed=1)
            source['dataroot_gt'] = str(folder / 'gt')
            if 'dataroot_lq' in source:
                write_images(folder / 'lq', [lq_template.format(i) for i in (1, 2)], seed=2)
                source['dataroot_lq'] = str(folder / 'lq')
        if phase == 'train':
            dataset.update(num_worker_per_gpu=0, batch_size_per_gpu=2)


def save_random_weights(network_opt, path, param_key='params', key_prefix=''):
    state_dict = {key_prefix + key: value for key, value in build_network(network_opt).state_dict().items()}
    torch.save({param_key: state_dict}, path)
    return str(path)


def parse_as_entry_point(options, tmp_path, monkeypatch, is_train):
    opt_file = tmp_path / 'options.yml'
    opt_file.write_text(yaml.dump(options, Dumper=ordered_yaml()[1]))
    monkeypatch.setattr(sys, 'argv', ['train.py' if is_train else 'test.py', '-opt', str(opt_file)])
    opt, _ = parse_options(str(tmp_path), is_train=is_train)
    opt['root_path'] = str(tmp_path)
    return opt


@pytest.mark.parametrize('option_file', OPTION_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT / 'options')))
def test_option_file_builds_model_and_datasets(option_file, tmp_path, monkeypatch):
    options = load_options(option_file)
    is_train = 'train' in options.get('datasets', {})
    point_datasets_at_tiny_data(options, tmp_path)
    for key in ('pretrain_network_g', 'pretrain_network_t'):
        if options['path'].get(key):
            network_key = key.replace('pretrain_', '')
            param_key = options['path'].get(f'param_key_{network_key[-1]}', 'params')
            key_prefix = options['path'].get(f'strip_prefix_{network_key[-1]}') or ''
            options['path'][key] = save_random_weights(options[network_key], tmp_path / f'{network_key}.pth',
                                                       param_key, key_prefix)
    opt = parse_as_entry_point(options, tmp_path, monkeypatch, is_train)
    if is_train:
        check_training_options(opt)  # what the entry points check before anything is built

    for dataset_opt in opt['datasets'].values():
        sample = build_dataset(dataset_opt)[0]
        assert sample['lq'].shape[0] == sample['gt'].shape[0] == opt['network_g'].get(
            'in_ch', opt['network_g'].get('inp_channels', opt['network_g'].get('num_in_ch')))
    model = build_model(opt)
    assert type(model).__name__ == opt['model_type']


def test_derain_options_train_on_rain12_style_names(tmp_path):
    options = load_options(REPO_ROOT / 'options' / 'distill_derain.yml')
    point_datasets_at_tiny_data(options, tmp_path)
    options['datasets']['train']['gt_size'] = 32
    options['path']['pretrain_network_t'] = save_random_weights(options['network_t'], tmp_path / 'teacher.pth')
    options['train'].update(total_iter=3, ema_decay=0)
    options['train']['scheduler']['periods'] = [3]
    options['val']['val_freq'] = 3
    options['logger'].update(print_freq=1, save_checkpoint_freq=3, use_tb_logger=False)
    opt_file = tmp_path / 'derain.yml'
    opt_file.write_text(yaml.dump(options, Dumper=ordered_yaml()[1]))

    run_entry_point(TRAIN_SCRIPT, opt_file, cwd=tmp_path)
    log = read_train_log(tmp_path / 'experiments' / 'distill_derain')
    assert re.findall(r'iter:\s+(\d+), lr', log) == ['1', '2', '3']
    assert 'l_hint_dec1' in log and re.search(r'# psnr: +\d+\.\d+', log)

"""BasicSR's own train/test pipelines through basicsr_snn's entry points, on CPU."""
import re

import pytest
import torch

from pipeline_utils import (TEST_SCRIPT, TRAIN_SCRIPT, assert_ranks_hold_equal_weights, read_train_log,
                            run_entry_point, run_main, write_options, write_paired_folder,
                            write_rank_recording_script)


def sr_model_options(data_root, name, total_iter=4, save_freq=2):
    """BasicSR's own SRModel with a tiny BasicSR arch: nothing of the plugin but the fixes."""
    paired = {'type': 'PairedImageDataset', 'dataroot_gt': str(data_root / 'gt'),
              'dataroot_lq': str(data_root / 'lq'), 'io_backend': {'type': 'disk'}}
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 10,
        'datasets': {
            'train': {**paired, 'name': 'tiny_train', 'gt_size': 16, 'use_hflip': True, 'use_rot': True,
                      'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1},
            'val': {**paired, 'name': 'tiny_val'},
        },
        'network_g': {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_conv': 2,
                      'upscale': 1, 'act_type': 'prelu'},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [100],
                                                                          'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'val': {'val_freq': total_iter, 'save_img': False, 'metrics': {
            'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
            'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


def test_train_validate_save_then_test(tmp_path):
    data = write_paired_folder(tmp_path / 'data')
    options = sr_model_options(data, 'tiny_sr')
    train_opt = write_options(tmp_path / 'train.yml', options)
    run_entry_point(TRAIN_SCRIPT, train_opt, cwd=tmp_path)

    experiment = tmp_path / 'experiments' / 'tiny_sr'
    log = read_train_log(experiment)
    assert re.search(r'# psnr: +\d+\.\d+', log) and re.search(r'# ssim: +\d+\.\d+', log)
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()
    assert (experiment / 'training_states' / '4.state').is_file()

    test_options = {key: options[key] for key in ('name', 'model_type', 'scale', 'num_gpu', 'network_g', 'val')}
    test_options.update(name='tiny_sr_test', datasets={'test_1': options['datasets']['val']},
                        path={'pretrain_network_g': str(experiment / 'models' / 'net_g_latest.pth'),
                              'strict_load_g': True})
    test_options['val'] = {**options['val'], 'save_img': True, 'suffix': None}
    run_entry_point(TEST_SCRIPT, write_options(tmp_path / 'test.yml', test_options), cwd=tmp_path)
    results = tmp_path / 'results' / 'tiny_sr_test'
    assert re.search(r'# psnr: +\d+\.\d+', next(results.glob('test_*.log')).read_text())
    assert len(list((results / 'visualization' / 'tiny_val').glob('*.png'))) == 4


def test_torchrun_two_ranks_on_cpu_without_the_launcher_flag(tmp_path):
    """Under torchrun a missing --launcher is inferred (an explicit one: test_distill_model's torchrun test)."""
    data = write_paired_folder(tmp_path / 'data')
    opt = write_options(tmp_path / 'train.yml', sr_model_options(data, 'tiny_ddp'))
    result = run_entry_point(write_rank_recording_script(tmp_path), opt, cwd=tmp_path, nproc=2)
    assert 'using --launcher pytorch' in result.stdout
    assert 'World size (gpu number): 2' in result.stdout + result.stderr + read_train_log(
        tmp_path / 'experiments' / 'tiny_ddp')
    assert [p.name for p in (tmp_path / 'experiments').iterdir()] == ['tiny_ddp']
    assert re.search(r'# psnr: +\d+\.\d+', read_train_log(tmp_path / 'experiments' / 'tiny_ddp'))
    # BasicSR seeds each rank differently: equal weights come from DDP's broadcast and averaged gradients
    saves, rank0 = assert_ranks_hold_equal_weights(tmp_path)
    assert saves == [2, 4, -1]
    saved = torch.load(tmp_path / 'experiments' / 'tiny_ddp' / 'models' / 'net_g_latest.pth')['params']
    assert all(torch.equal(saved[key], value) for key, value in rank0[-1].items())


def test_auto_resume_continues_from_saved_iteration(tmp_path):
    data = write_paired_folder(tmp_path / 'data')
    run_entry_point(TRAIN_SCRIPT, write_options(tmp_path / 'first.yml', sr_model_options(data, 'tiny_resume', 2)),
                    cwd=tmp_path)
    longer = write_options(tmp_path / 'longer.yml', sr_model_options(data, 'tiny_resume', total_iter=4))
    run_entry_point(TRAIN_SCRIPT, longer, '--auto_resume', cwd=tmp_path)

    experiment = tmp_path / 'experiments' / 'tiny_resume'
    resumed_log = sorted(experiment.glob('train_*.log'))[-1].read_text()
    assert re.search(r'Start training from epoch: \d+, iter: 2\n', resumed_log)
    printed_iters = [int(i) for i in re.findall(r'iter:\s+(\d+), lr', resumed_log)]
    assert printed_iters == [3, 4]
    assert [p.name for p in (tmp_path / 'experiments').iterdir()] == ['tiny_resume']
    assert (tmp_path / 'experiments' / 'tiny_resume' / 'training_states' / '4.state').is_file()


def train_in_process(tmp_path, options, *args):
    """``basicsr-snn-train -opt OPTIONS ARGS`` in this process (``main(argv)``), in ``tmp_path``; its experiment
    folder and what it printed on stderr."""
    result = run_main(TRAIN_SCRIPT, '-opt', write_options(tmp_path / f"{options['name']}.yml", options), *args,
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / 'experiments' / options['name'], result.stderr


def test_two_runs_in_one_process_each_train_save_and_validate_once(tmp_path):
    data = write_paired_folder(tmp_path / 'data')
    first = sr_model_options(data, 'first')
    second = sr_model_options(data, 'second')
    second['path']['strip_prefix_g'] = 'net.'  # names a key prefix, not a folder
    for options in (first, second):
        experiment, console = train_in_process(tmp_path, options)
        [log] = experiment.glob('train_*.log')
        text = log.read_text()
        assert console.count('Start training from epoch') == 1 and console.count('# psnr') == 1  # one handler
        assert (experiment / 'models' / 'net_g_latest.pth').is_file()
        assert [int(i) for i in re.findall(r'iter:\s+(\d+), lr', text)] == [1, 2, 3, 4]
        # validated once, at the last iteration (not again after the final save)
        assert len(re.findall(r'# psnr: +\d+\.\d+', text)) == 1
        assert text.count('Start training from epoch') == 1 and text.count('Saving models and training states') == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'experiments', 'first.yml', 'second.yml']


@pytest.mark.parametrize('stop_at, augment', [(2, False), (3, False), (3, True)],
                         ids=['epoch_boundary', 'mid_epoch', 'random_crops_and_flips'])
def test_resumed_run_equals_uninterrupted(tmp_path, stop_at, augment):
    data = write_paired_folder(tmp_path / 'data', size=16)

    def options(name, total_iter):
        opt = sr_model_options(data, name, total_iter=total_iter, save_freq=1)
        # without augmentation whole-image crops, no flips: the data order is then the only randomness
        opt['datasets']['train'].update(use_hflip=augment, use_rot=augment, gt_size=8 if augment else 16)
        opt['val']['val_freq'] = 100
        return opt

    train_in_process(tmp_path, options('whole', 6))
    train_in_process(tmp_path, options('resumed', stop_at))
    train_in_process(tmp_path, options('resumed', 6), '--auto_resume')

    def weights(name):
        return torch.load(tmp_path / 'experiments' / name / 'models' / 'net_g_6.pth')['params']

    whole, resumed = weights('whole'), weights('resumed')
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=0, msg=key)

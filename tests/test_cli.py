"""The entry points as a newcomer meets them: help, one-line errors, no empty run folders, quiet logs,
and the scripts' friendly failures."""
import os
import re

import pytest
import torch
import yaml

from pipeline_utils import (REPO_ROOT, TEST_SCRIPT, TRAIN_SCRIPT, run_main, run_program, write_options,
                            write_paired_folder)
from snn_options import training_options


def run(script, *args, cwd, env=None):
    environment = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', **(env or {}))
    environment.pop('BASICSR_SNN_THREADS', None)  # the tests choose the threads through $OMP_NUM_THREADS
    if script in (TRAIN_SCRIPT, TEST_SCRIPT):
        return run_main(script, *args, cwd=cwd, env=environment)
    return run_program(script, *args, cwd=cwd, env=environment, timeout=300)


def test_help_says_what_it_is_and_points_at_the_option_files(tmp_path):
    for script, word in ((TRAIN_SCRIPT, 'train'), (TEST_SCRIPT, 'test')):
        result = run(script, '--help', cwd=tmp_path)
        assert result.returncode == 0
        assert result.stdout.startswith(f'basicsr-snn-{word}: ') and 'options/' in result.stdout
        assert '-opt FILE' in result.stdout and '--debug' in result.stdout


def test_a_missing_option_file_is_one_line(tmp_path):
    result = run(TRAIN_SCRIPT, '-opt', 'nope.yml', cwd=tmp_path)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip() == ('basicsr-snn-train: -opt nope.yml: no such option file (the option files are in '
                                     'options/, e.g. options/distill_denoise.yml)')
    assert not any(tmp_path.iterdir())


def test_a_run_that_fails_to_start_leaves_no_folder_and_restores_an_archived_one(tmp_path):
    data = write_paired_folder(tmp_path / 'data')
    options = training_options(tmp_path, data, 'broken', total_iter=2)
    options['logger']['use_tb_logger'] = True
    options['datasets']['val']['dataroot_gt'] = str(tmp_path / 'missing')
    opt = write_options(tmp_path / 'train.yml', options)
    earlier = tmp_path / 'work' / 'experiments' / 'broken'
    earlier.mkdir(parents=True)
    (earlier / 'notes.txt').write_text('an earlier run')

    result = run(TRAIN_SCRIPT, '-opt', opt, cwd=tmp_path / 'work')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'missing' in result.stderr and 'add --debug for the full traceback' in result.stderr
    assert (earlier / 'notes.txt').read_text() == 'an earlier run'  # archived, then moved back
    assert sorted(p.name for p in (tmp_path / 'work' / 'experiments').iterdir()) == ['broken']
    assert not (tmp_path / 'work' / 'tb_logger').exists()

    debug = run(TRAIN_SCRIPT, '-opt', opt, '--debug', cwd=tmp_path / 'work')
    assert debug.returncode != 0 and 'Traceback' in debug.stderr


def test_options_print_as_yaml_and_the_quiet_console_keeps_them_in_the_log(tmp_path):
    data = write_paired_folder(tmp_path / 'data')
    options = training_options(tmp_path, data, 'quiet', total_iter=2)
    options['train']['distill'] = None
    opt = write_options(tmp_path / 'train.yml', options)
    result = run(TRAIN_SCRIPT, '-opt', opt, cwd=tmp_path, env={'BASICSR_SNN_QUIET': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert 'torch threads: 1 ($OMP_NUM_THREADS' in console
    assert 'Iteration 1 done in' in console and '# psnr:' in console
    assert 'network_g:' not in console and 'Version Information' not in console
    log = next((tmp_path / 'experiments' / 'quiet').glob('train_*.log')).read_text()
    assert '  network_g:\n    type: SpikerIR\n' in log and 'OrderedDict' not in log and 'datasets:[' not in log


def test_list_modules_names_the_registered_archs(tmp_path):
    result = run(REPO_ROOT / 'scripts' / 'list_modules.py', '--arch', 'SpikerRI', cwd=tmp_path)
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert "network_g.type: no arch named 'SpikerRI'; registered: [" in result.stderr and "'SpikerIR'" in result.stderr


def test_energy_report_names_a_missing_checkpoint(tmp_path):
    result = run(REPO_ROOT / 'scripts' / 'energy_report.py', '--student-arch', '{type: SpikerIR, in_ch: 1, out_ch: 1}',
                 '--student-ckpt', tmp_path / 'none.pth', '--no-twin', '--out', tmp_path / 'e.json', cwd=tmp_path)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert f"energy_report.py: student checkpoint: no such file '{tmp_path / 'none.pth'}'" in result.stderr


def test_an_unknown_arch_of_basicsr_s_own_model_lists_the_registered_names(tmp_path):
    data = write_paired_folder(tmp_path / 'data')
    options = training_options(tmp_path, data, 'unknown_arch', model_type='SRModel', total_iter=2)
    options['network_g'] = {'type': 'Restormr'}
    result = run(TRAIN_SCRIPT, '-opt', write_options(tmp_path / 'train.yml', options), cwd=tmp_path)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith('basicsr-snn-train: '))
    assert line.startswith("basicsr-snn-train: no arch named 'Restormr' (check its type: option); registered: [")
    assert "'Restormer'" in line and "'SpikerIR'" in line
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.parametrize('force_yml, line', [
    ('train:optim_g:lr=fast', "train.optim_g.lr must be a number > 0, got 'fast'"),
    ('train:optim_g:lr=-1e-3', 'train.optim_g.lr must be a number > 0, got -0.001'),
    ('train:total_iter=-5', 'train.total_iter must be an integer >= 1, got -5'),
    ('logger:save_checkpoint_freq=0', 'logger.save_checkpoint_freq must be an integer >= 1, got 0'),
])
def test_a_bad_option_value_is_one_line_naming_the_key_and_leaves_no_folder(tmp_path, force_yml, line):
    data = write_paired_folder(tmp_path / 'data')
    opt = write_options(tmp_path / 'train.yml', training_options(tmp_path, data, 'bad_value', total_iter=2))
    result = run(TRAIN_SCRIPT, '-opt', opt, '--force_yml', force_yml, cwd=tmp_path)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.splitlines() == [f'basicsr-snn-train: {line}',
                                          'basicsr-snn-train: add --debug for the full traceback']
    assert not (tmp_path / 'experiments').exists()


def test_a_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path):
    opt = tmp_path / 'broken.yml'
    opt.write_text('name: broken\ntrain:\n  total_iter: [4, 5\nlogger: {}\n')
    result = run(TRAIN_SCRIPT, '-opt', opt, cwd=tmp_path)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    first = result.stderr.splitlines()[0]
    assert re.fullmatch(rf'basicsr-snn-train: {re.escape(str(opt))}:4:7: not valid YAML: .+ \(fix the option file\)',
                        first), first
    assert not (tmp_path / 'experiments').exists()


def test_numbers_yaml_reads_as_strings_are_read_as_numbers(tmp_path):
    data = write_paired_folder(tmp_path / 'data')
    options = training_options(tmp_path, data, 'exponents', total_iter=1)
    options['logger']['save_checkpoint_freq'] = 1
    text = yaml.safe_dump(options, sort_keys=False)
    text = text.replace('lr: 0.002', 'lr: 2e-3').replace('total_iter: 1', 'total_iter: 1e0')
    assert 'lr: 2e-3' in text and yaml.safe_load(text)['train']['optim_g']['lr'] == '2e-3'  # PyYAML: a string
    opt = tmp_path / 'train.yml'
    opt.write_text(text)
    result = run(TRAIN_SCRIPT, '-opt', opt, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / 'experiments' / 'exponents' / 'training_states' / '1.state', weights_only=False)
    assert state['optimizers'][0]['param_groups'][0]['initial_lr'] == 2e-3

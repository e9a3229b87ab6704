"""DistillSNNModel: a frozen teacher, hints through adapters, resume, DDP on CPU, clear option errors."""
import copy
import re
from pathlib import Path

import pytest
import torch

from basicsr_snn import pipeline
from neuron_probe import neuron_kernels
from pipeline_utils import (assert_ranks_hold_equal_weights, read_train_log, run_entry_point, write_options,
                            write_rank_recording_script)
from snn_options import (STUDENT, TEACHER, build_model, captured_log, in_process_options, training_batch,
                         training_options, validation_loader, write_teacher_checkpoint)

LOSS_KEYS = {'l_pix', 'l_fft', 'distill_weight', 'l_hint_dec1', 'l_hint_dec2', 'firing_rate'}


def distill_options(root, data_root, teacher_path, name='distill', **train):
    options = training_options(root, data_root, name, 'DistillSNNModel', teacher_path=teacher_path, **train)
    return in_process_options(root, options)


def train(model, batches, start=1):
    for current_iter, batch in enumerate(batches, start):
        model.update_learning_rate(current_iter)
        model.feed_data(batch)
        model.optimize_parameters(current_iter)


def total_loss(log):
    hints = sum(value for key, value in log.items() if key.startswith('l_hint_'))
    return log['l_pix'] + log['l_fft'] + log['distill_weight'] * hints


def test_teacher_stays_frozen_and_out_of_checkpoints(tmp_path, data_root, teacher_path):
    options = distill_options(tmp_path, data_root, teacher_path)
    model = build_model(options)
    teacher_before = {key: value.clone() for key, value in model.net_t.state_dict().items()}
    student_before = {key: value.clone() for key, value in model.net_g.state_dict().items()}
    model.net_t.train()  # whoever switches it back, the teacher runs in eval mode
    train(model, [training_batch(options)] * 5)

    assert set(model.log_dict) == LOSS_KEYS
    assert not model.net_t.training
    for key, value in model.net_t.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert all(not p.requires_grad and p.grad is None for p in model.net_t.parameters())
    optimized = {id(p) for group in model.optimizer_g.param_groups for p in group['params']}
    assert not optimized & {id(p) for p in model.net_t.parameters()}
    assert {id(p) for p in model.net_adapters.parameters()} <= optimized
    assert any(not torch.equal(value, student_before[key]) for key, value in model.net_g.state_dict().items())

    model.save(epoch=0, current_iter=5)
    models = Path(options['path']['models'])
    assert sorted(p.name for p in models.iterdir()) == ['net_adapters_5.pth', 'net_g_5.pth']
    saved_student = torch.load(models / 'net_g_5.pth')['params']
    assert saved_student.keys() == model.net_g.state_dict().keys()

    # the student checkpoint is a plain SNNModel checkpoint
    test_options = copy.deepcopy(options)
    test_options.update(is_train=False, model_type='SNNModel')
    test_options['path']['pretrain_network_g'] = str(models / 'net_g_5.pth')
    tester = build_model(test_options)
    batch = training_batch(options)
    for runner in (model, tester):
        runner.feed_data(batch)
        runner.test()
    assert torch.equal(model.output, tester.output)


def test_total_loss_decreases_on_a_fixed_batch(tmp_path, data_root, teacher_path):
    options = distill_options(tmp_path, data_root, teacher_path)
    model = build_model(options)
    batch = training_batch(options)
    losses = []
    for current_iter in range(1, 31):
        train(model, [batch], start=current_iter)
        losses.append(total_loss(model.log_dict))
    assert losses[-1] < 0.8 * losses[0]
    assert sum(losses[-5:]) < sum(losses[:5])


@pytest.mark.parametrize('neuron_backend', ['spikingjelly', 'fused'])
def test_resume_reaches_the_uninterrupted_weights(tmp_path, data_root, teacher_path, neuron_backend, monkeypatch):
    monkeypatch.setenv('BASICSR_SNN_NEURON_BACKEND', neuron_backend)
    half = 3
    base = training_options(tmp_path, data_root, 'resume', 'DistillSNNModel', total_iter=2 * half,
                            teacher_path=teacher_path, ema_decay=0.9)
    batches = [training_batch(in_process_options(tmp_path, base), start=i) for i in range(2 * half)]

    torch.manual_seed(0)
    uninterrupted = build_model(in_process_options(tmp_path / 'uninterrupted', base))
    with neuron_kernels(uninterrupted.net_g) as kernels:
        train(uninterrupted, batches)
    assert set(kernels) == {neuron_backend} and kernels[neuron_backend] > 0

    first_options = in_process_options(tmp_path / 'interrupted', base)
    torch.manual_seed(0)
    first = build_model(first_options)
    train(first, batches[:half])
    first.save(epoch=0, current_iter=half)
    weights_at_half = {key: value.clone() for key, value in first.net_g.state_dict().items()}

    resumed_options = copy.deepcopy(first_options)
    resumed_options['path']['resume_state'] = str(Path(first_options['path']['training_states']) / f'{half}.state')
    resume_state = pipeline.load_resume_state(resumed_options)  # what train.py does
    assert resumed_options['path']['pretrain_network_t'] == str(teacher_path)
    assert resumed_options['path']['pretrain_network_g'].endswith(f'net_g_{half}.pth')
    torch.manual_seed(1)  # everything that matters must come from the checkpoints
    resumed = build_model(resumed_options)
    resumed.resume_training(resume_state)
    train(resumed, batches[half:], start=half + 1)

    for attribute in ('net_g', 'net_g_ema', 'net_adapters'):
        expected = getattr(uninterrupted, attribute).state_dict()
        for key, value in getattr(resumed, attribute).state_dict().items():
            assert torch.allclose(value.float(), expected[key].float(), atol=1e-6), f'{attribute}.{key}'
    assert any(not torch.equal(value, weights_at_half[key]) for key, value in resumed.net_g.state_dict().items())


def test_membrane_hint_output_term_and_step_schedule(tmp_path, data_root, teacher_path):
    distill = {'hints': [{'name': 'v1', 'student': 'decoder1.0.neuron2', 'teacher': 'decoder_level1',
                          'reduce': 'membrane', 'loss': {'type': 'L1Loss'}}],
               'output': {'loss': {'type': 'MSELoss'}, 'weight': 0.5},
               'schedule': {'type': 'step', 'gamma': 0.5, 'until_iter': 1}}
    options = distill_options(tmp_path, data_root, teacher_path, distill=distill)
    model = build_model(options)
    teacher_runs = []
    model.net_t.register_forward_hook(lambda *_: teacher_runs.append(1))
    batch = training_batch(options)
    train(model, [batch])
    assert {'l_hint_v1', 'l_output_kd'} <= set(model.log_dict) and model.log_dict['distill_weight'] == 0.5
    assert len(teacher_runs) == 1
    train(model, [batch], start=2)
    assert model.log_dict['distill_weight'] == 0 and not {'l_hint_v1', 'l_output_kd'} & set(model.log_dict)
    assert len(teacher_runs) == 1  # distillation off: the teacher is not run


def test_teacher_psnr_logged_once_per_dataset(tmp_path, data_root, teacher_path):
    options = distill_options(tmp_path, data_root, teacher_path)
    model = build_model(options)
    train(model, [training_batch(options)])
    with captured_log() as log:
        for current_iter in (1, 2):
            model.validation(validation_loader(options), current_iter, tb_logger=None, save_img=False)
    teacher_lines = [line for line in log if line.startswith('Teacher PSNR')]
    assert len(teacher_lines) == 1 and re.fullmatch(r'Teacher PSNR on tiny_val: \d+\.\d\d dB', teacher_lines[0])
    assert sum(line.startswith('Validation tiny_val') for line in log) == 2


def mismatched_teacher(tmp_path):
    return write_teacher_checkpoint(tmp_path / 'other_teacher.pth', network={**TEACHER, 'num_refinement_blocks': 2})


@pytest.mark.parametrize('change, error, message', [
    (lambda o, _: o['train']['distill']['hints'][0].update(student='decodr1'), ValueError,
     r"train\.distill\.hints\[0\]\.student: SpikerIR has no module 'decodr1'\. Did you mean \['decoder1'"),
    (lambda o, _: o['train']['distill']['hints'][1].update(teacher='decoder_level_2'), ValueError,
     r"train\.distill\.hints\[1\]\.teacher: Restormer has no module 'decoder_level_2'.*Valid module paths: "),
    (lambda o, tmp: o['path'].update(pretrain_network_t=str(tmp / 'absent.pth')), FileNotFoundError,
     r'path\.pretrain_network_t: no such file .*absent\.pth'),
    (lambda o, _: o['path'].update(pretrain_network_t=None), ValueError, r'path\.pretrain_network_t is missing'),
    (lambda o, _: o.pop('network_t'), ValueError, r'network_t is missing'),
    (lambda o, tmp: o['path'].update(pretrain_network_t=str(mismatched_teacher(tmp))), ValueError,
     r'path\.pretrain_network_t: .*other_teacher\.pth \[params\] does not match network_t \(Restormer\) under '
     r"path\.strict_load_t: true; missing keys: \[\], unexpected keys: \['refinement\.1\."),
    (lambda o, _: o['path'].update(param_key_t='params_ema'), ValueError, r"path\.param_key_t: 'params_ema' is not in"),
    (lambda o, _: o['network_g'].update(T=0), ValueError, r'network_g\.T must be an integer >= 1, got 0'),
    (lambda o, _: o['train']['distill'].update(shedule={}), ValueError,
     r"train\.distill: unknown key\(s\) \['shedule'\]"),
])
def test_bad_options_stop_before_training(tmp_path, data_root, teacher_path, change, error, message):
    options = distill_options(tmp_path, data_root, teacher_path)
    change(options, tmp_path)
    with pytest.raises(error, match=message):
        build_model(options)


def test_untrained_teacher_needs_an_explicit_opt_in(tmp_path, data_root, teacher_path):
    options = distill_options(tmp_path, data_root, teacher_path)
    options['path']['pretrain_network_t'] = None
    options['train']['distill']['allow_random_teacher'] = True
    with captured_log() as log:
        model = build_model(options)
    assert 'Distilling from an untrained teacher (train.distill.allow_random_teacher: true).' in log
    # nothing was loaded: the checkpoint the options named before holds weights drawn from another random state
    trained = torch.load(teacher_path)['params']
    teacher = model.net_t.state_dict()
    assert teacher.keys() == trained.keys()
    assert not any(torch.equal(teacher[key], trained[key]) for key in teacher if key.endswith('qkv.weight'))
    assert not model.net_t.training and not any(p.requires_grad for p in model.net_t.parameters())


def test_torchrun_two_ranks_distill_and_validate(tmp_path, data_root, teacher_path, monkeypatch):
    """train.py's pipeline under torchrun, with each rank's loss keys and weights written down; fused
    neurons and a firing-rate budget under DDP."""
    monkeypatch.setenv('BASICSR_SNN_NEURON_BACKEND', 'fused')
    options = training_options(tmp_path, data_root, 'distill_ddp', 'DistillSNNModel', total_iter=3,
                               teacher_path=teacher_path, ema_decay=0.9, rate_opt={'target': 0., 'loss_weight': 0.1})
    options['logger']['save_checkpoint_freq'] = 1
    run_entry_point(write_rank_recording_script(tmp_path), write_options(tmp_path / 'train.yml', options),
                    cwd=tmp_path, launcher='pytorch', nproc=2)

    keys = [(tmp_path / f'loss_keys_rank{rank}.txt').read_text().splitlines() for rank in (0, 1)]
    assert len(keys[0]) == 3 and keys[0] == keys[1]
    # the distillation weight is a number of the host, the same on every rank: logged without a reduction
    assert set(keys[0][0].split()) == LOSS_KEYS - {'distill_weight'} | {'l_rate'}
    log = read_train_log(tmp_path / 'experiments' / 'distill_ddp')
    assert 'World size (gpu number): 2' in log
    assert len(re.findall(r'Teacher PSNR on tiny_val: \d+\.\d\d dB', log)) == 1
    assert len(re.findall(r'# psnr: +\d+\.\d+', log)) == 1  # at the last iteration (val_freq), once
    assert re.search(r'l_rate: \S+ distill_weight: \S+ l_hint_dec1: \S+ l_hint_dec2: \S+ firing_rate: \S+', log)
    models = tmp_path / 'experiments' / 'distill_ddp' / 'models'
    assert (models / 'net_adapters_latest.pth').is_file() and (models / 'net_g_latest.pth').is_file()
    saves, rank0 = assert_ranks_hold_equal_weights(tmp_path)
    assert saves == [1, 2, 3, -1]
    saved = torch.load(models / 'net_g_latest.pth')['params']
    assert saved.keys() == build_student_keys()
    assert all(torch.equal(saved[key], value) for key, value in rank0[-1].items())


def build_student_keys():
    from basicsr_snn.models.snn_model import build_network_from_options
    return build_network_from_options({'network_g': dict(STUDENT)}, 'network_g').state_dict().keys()

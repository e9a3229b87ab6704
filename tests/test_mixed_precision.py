"""train.amp / val.amp: bf16 and fp16 autocast on the CPU, GradScaler overflow steps, float32 checkpoints."""
import math
from pathlib import Path

import pytest
import torch

from basicsr_snn.models.mixed_precision import MixedPrecision
from basicsr_snn.models.training_guard import TrainingDiverged
from snn_options import build_model, captured_log, in_process_options, training_batch, training_options


def model_with(tmp_path, data_root, model_type='SNNModel', teacher_path=None, val_amp=None, **train):
    options = training_options(tmp_path, data_root, 'amp', model_type, teacher_path=teacher_path, **train)
    options['val']['amp'] = val_amp
    return build_model(in_process_options(tmp_path, options))


def student_weights(model):
    return {key: value.clone() for key, value in model.get_bare_model(model.net_g).state_dict().items()}


class OutputDtypes:
    """The dtypes of a module's outputs while attached."""

    def __init__(self, module):
        self.seen = []
        self._handle = module.register_forward_hook(lambda _module, _inputs, output: self.seen.append(output.dtype))

    def remove(self):
        self._handle.remove()


def first_conv(network):
    return next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d))


def test_bf16_distillation_trains_with_finite_falling_losses_and_saves_float32(tmp_path, data_root, teacher_path):
    model = model_with(tmp_path, data_root, 'DistillSNNModel', teacher_path, amp={'dtype': 'bf16'})
    student_dtypes = OutputDtypes(first_conv(model.net_g))
    teacher_dtypes = OutputDtypes(first_conv(model.net_t))
    batch = training_batch(model.opt)
    totals = []
    for current_iter in range(1, 9):
        model.feed_data(batch)
        model.optimize_parameters(current_iter)
        log = model.log_dict
        assert all(math.isfinite(value) for value in log.values()), log
        hints = sum(value for key, value in log.items() if key.startswith('l_hint_'))
        totals.append(log['l_pix'] + log['l_fft'] + log['distill_weight'] * hints)
    student_dtypes.remove()
    teacher_dtypes.remove()

    assert set(student_dtypes.seen) == {torch.bfloat16} and set(teacher_dtypes.seen) == {torch.bfloat16}
    assert totals[-1] < 0.9 * totals[0], totals
    assert model.loss_guard.skipped_in_a_row == 0
    model.save(epoch=0, current_iter=8)
    models = Path(model.opt['path']['models'])
    for name in ('net_g_8.pth', 'net_adapters_8.pth'):
        saved = torch.load(models / name)['params']
        assert {value.dtype for value in saved.values() if value.is_floating_point()} == {torch.float32}, name
    assert all(p.dtype == torch.float32 for group in model.optimizer_g.param_groups for p in group['params'])


def inflate_gradients(model):
    """A hook that turns one student gradient infinite, as an fp16 overflow does."""
    parameter = next(model.get_bare_model(model.net_g).parameters())
    return parameter.register_hook(lambda grad: grad * math.inf)


def test_an_fp16_overflow_step_is_skipped_by_gradscaler_without_counting_as_a_bad_step(tmp_path, data_root):
    # max_skips 0: a single step counted by the loss guard would stop the run
    model = model_with(tmp_path, data_root, amp={'dtype': 'fp16'}, loss_guard={'max_skips': 0})
    batch = training_batch(model.opt)
    model.feed_data(batch)
    model.optimize_parameters(1)
    scale = model.amp.scale()
    before = student_weights(model)

    handle = inflate_gradients(model)
    model.feed_data(batch)
    with captured_log() as messages:
        model.optimize_parameters(2)
    handle.remove()
    assert all(torch.equal(value, before[key]) for key, value in student_weights(model).items())
    assert model.amp.scale() == scale / 2 and model.loss_guard.skipped_in_a_row == 0
    assert any(f'Iteration 2: fp16 gradients overflowed; step skipped, loss scale {scale:g} -> {scale / 2:g}' in m
               for m in messages)

    model.feed_data(batch)
    model.optimize_parameters(3)
    after = student_weights(model)
    assert any(not torch.equal(value, before[key]) for key, value in after.items())
    assert model.amp.scale() == scale / 2


def test_a_non_finite_fp16_loss_is_a_bad_step_that_leaves_the_scale(tmp_path, data_root):
    """Its gradients are not finite either (it is back-propagated), but the loss, not the scale, is at fault."""
    model = model_with(tmp_path, data_root, amp={'dtype': 'fp16'}, loss_guard={'max_skips': 1})
    batch = training_batch(model.opt)
    model.feed_data(batch)
    model.optimize_parameters(1)
    scale, before = model.amp.scale(), student_weights(model)
    model.feed_data(dict(batch, lq=torch.full_like(batch['lq'], float('nan'))))
    with captured_log() as messages:
        model.optimize_parameters(2)
    assert model.loss_guard.skipped_in_a_row == 1 and model.amp.scale() == scale
    assert not any('overflowed' in m for m in messages)
    assert all(torch.equal(value, before[key]) for key, value in student_weights(model).items())
    model.feed_data(batch)
    model.optimize_parameters(3)  # GradScaler is ready for the next step
    assert model.loss_guard.skipped_in_a_row == 0


def test_the_loss_guard_counts_an_overflow_that_no_scale_explains(tmp_path, data_root):
    for amp in ({'dtype': 'bf16'}, {'dtype': 'fp16'}):
        model = model_with(tmp_path, data_root, amp=amp, loss_guard={'max_skips': 0})
        batch = training_batch(model.opt)
        model.feed_data(batch)
        model.optimize_parameters(1)
        if amp['dtype'] == 'fp16':
            model.amp.scaler.update(0.5)  # GradScaler has backed off below 1: the gradients overflow on their own
        inflate_gradients(model)
        model.feed_data(batch)
        with pytest.raises(TrainingDiverged, match='iteration 2: the gradient norm is not finite'):
            model.optimize_parameters(2)


def test_val_amp_runs_the_test_forward_in_bf16_and_returns_float32(tmp_path, data_root):
    model = model_with(tmp_path, data_root, val_amp={'dtype': 'bf16'})
    dtypes = OutputDtypes(first_conv(model.net_g))
    model.feed_data(training_batch(model.opt))
    model.test()
    dtypes.remove()
    assert dtypes.seen == [torch.bfloat16]
    assert model.output.dtype == torch.float32 and torch.isfinite(model.output).all()
    assert not model.amp.enabled  # train.amp stays off


@pytest.mark.parametrize('amp, message', [
    ({'dtype': 'fp8'}, r"train\.amp\.dtype must be one of \('bf16', 'fp16'\), got 'fp8'"),
    ({'type': 'bf16'}, r"train\.amp: unknown key\(s\) \['type'\]; valid keys: \['dtype'\]"),
    ({}, r"train\.amp\.dtype is missing: give one of \('bf16', 'fp16'\)"),
])
def test_bad_amp_options_name_the_key_and_the_choices(amp, message):
    with pytest.raises(ValueError, match=message):
        MixedPrecision.from_options(amp, torch.device('cpu'), 'train.amp')


def test_amp_off_runs_in_float32():
    amp = MixedPrecision.from_options(None, torch.device('cpu'), 'train.amp')
    with amp.autocast():
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32
    assert amp.scale() is None and not amp.enabled


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False),
                    reason='this GPU has bf16')
def test_bf16_on_a_cuda_device_without_bf16_is_refused_at_start_up():
    """Before Ampere (and here, without any GPU) autocast would fail at the first forward, or emulate bf16."""
    with pytest.raises(ValueError, match=r'^train\.amp\.dtype: bf16 needs a GPU with bf16 arithmetic \(Ampere or '
                                         r'newer\), which this machine has not; use fp16 \(or train\.amp: ~ for '
                                         r'float32\)$'):
        MixedPrecision.from_options({'dtype': 'bf16'}, torch.device('cuda'), 'train.amp')
    assert MixedPrecision.from_options({'dtype': 'bf16'}, torch.device('cpu'), 'train.amp').enabled

"""SNNModel: neuron reset, EMA buffers, any torch optimizer, firing rates, FFT term, option errors."""
import re
from pathlib import Path

import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snn_options import (build_model, captured_log, in_process_options, training_batch, training_options,
                         validation_loader)


class StatefulToyNet(nn.Module):
    """A spiking arch that, unlike SpikerIR, never resets its neurons itself."""

    def __init__(self, channels=3, T=2):
        super().__init__()
        self.T = T
        self.conv = layer.Conv2d(channels, 4, 3, padding=1, step_mode='m')
        self.norm = layer.BatchNorm2d(4, step_mode='m')
        self.lif = neuron.LIFNode(step_mode='m', v_threshold=0.1)
        self.head = layer.Conv2d(4, channels, 3, padding=1, step_mode='m')

    def forward(self, x):
        sequence = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        return x + self.head(self.lif(self.norm(self.conv(sequence)))).mean(0)


class ScalarRecorder:
    """Stands in for tensorboard's SummaryWriter."""

    def __init__(self):
        self.scalars = {}

    def add_scalar(self, tag, value, step):
        self.scalars[tag] = (value, step)


def register_toy_arch():
    from basicsr.utils.registry import ARCH_REGISTRY
    if 'StatefulToyNet' not in ARCH_REGISTRY:
        ARCH_REGISTRY.register()(StatefulToyNet)
    return {'type': 'StatefulToyNet'}


def snn_options(tmp_path, data_root, **train):
    return in_process_options(tmp_path, training_options(tmp_path, data_root, 'snn', **train))


def train(model, batch, iterations, start=1):
    for current_iter in range(start, start + iterations):
        model.update_learning_rate(current_iter)
        model.feed_data(batch)
        model.optimize_parameters(current_iter)


def test_adamw_fft_term_and_firing_rate_logged(tmp_path, data_root):
    options = snn_options(tmp_path, data_root)
    model = build_model(options)
    assert type(model.optimizer_g) is torch.optim.AdamW
    train(model, training_batch(options), 2)
    assert set(model.log_dict) == {'l_pix', 'l_fft', 'firing_rate'}
    assert 0 < model.log_dict['firing_rate'] < 1
    # the logged terms of the last step, from its output: L1 and 0.1 x the L1 distance of the half spectra
    output, gt = model.output.detach(), model.gt
    spectrum_distance = (torch.view_as_real(torch.fft.rfft2(output)) - torch.view_as_real(torch.fft.rfft2(gt))).abs()
    assert model.log_dict['l_pix'] == pytest.approx((output - gt).abs().mean().item(), rel=1e-5)
    assert model.log_dict['l_fft'] == pytest.approx(0.1 * spectrum_distance.mean().item(), rel=1e-5)


def test_firing_rate_measured_only_on_logged_iterations(tmp_path, data_root):
    options = snn_options(tmp_path, data_root)
    options['logger']['print_freq'] = 2
    model = build_model(options)
    batch = training_batch(options)
    train(model, batch, 1)
    assert 'firing_rate' not in model.log_dict
    train(model, batch, 1, start=2)
    assert 'firing_rate' in model.log_dict


def sgd_step(weight, grad, lr, **_):
    return weight - lr * grad  # the first step: the momentum buffer is the gradient itself


def adam_step(weight, grad, lr, eps=1e-8, **_):
    # the first step: bias-corrected moments are grad and grad**2
    return weight - lr * grad / (grad.abs() + eps)


@pytest.mark.parametrize('optimizer, first_step', [({'type': 'SGD', 'lr': 0.01, 'momentum': 0.9}, sgd_step),
                                                   ({'type': 'Adam', 'lr': 1e-3}, adam_step)])
def test_other_torch_optimizers_take_their_own_step(tmp_path, data_root, optimizer, first_step):
    options = snn_options(tmp_path, data_root, optim_g=optimizer)
    model = build_model(options)
    assert type(model.optimizer_g).__name__ == optimizer['type']
    before = {name: p.detach().clone() for name, p in model.net_g.named_parameters()}
    train(model, training_batch(options), 1)
    moved = 0
    for name, parameter in model.net_g.named_parameters():
        expected = first_step(before[name], parameter.grad, **optimizer)
        torch.testing.assert_close(parameter.detach(), expected, rtol=1e-5, atol=1e-7, msg=name)
        moved += not torch.equal(parameter, before[name])
    assert moved > 0


def test_unknown_optimizer_lists_valid_names(tmp_path, data_root):
    with pytest.raises(ValueError, match=r"train\.optim_g\.type: 'Adamw'.*'AdamW'.*'SGD'"):
        build_model(snn_options(tmp_path, data_root, optim_g={'type': 'Adamw', 'lr': 1e-3}))


def test_zero_time_steps_names_the_option(tmp_path, data_root):
    options = snn_options(tmp_path, data_root)
    options['network_g']['T'] = 0
    with pytest.raises(ValueError, match=r'network_g\.T must be an integer >= 1, got 0'):
        build_model(options)


def test_unknown_arch_names_the_option(tmp_path, data_root):
    options = snn_options(tmp_path, data_root)
    options['network_g']['type'] = 'SpikerIr'
    with pytest.raises(ValueError, match=r"network_g\.type: no arch named 'SpikerIr'.*'SpikerIR'"):
        build_model(options)


def test_arch_without_its_own_reset_trains_and_tests_repeatably(tmp_path, data_root):
    options = snn_options(tmp_path, data_root)
    options['network_g'] = register_toy_arch()
    model = build_model(options)
    batch = training_batch(options)
    # without a reset after the step, the second backward would run through the first step's graph
    train(model, batch, 3)
    lif = model.net_g.lif
    assert isinstance(lif.v, float) and lif.v == 0.
    model.feed_data(batch)
    model.test()
    first = model.output.clone()
    model.test()
    assert torch.equal(first, model.output)
    assert model.net_g.training


def test_a_test_starts_from_resting_neurons_and_leaves_them_resting(tmp_path, data_root):
    options = snn_options(tmp_path, data_root)
    options['network_g'] = register_toy_arch()  # SpikerIR would reset itself: this net relies on the model
    model = build_model(options)
    batch = training_batch(options)
    train(model, batch, 1)
    net, lif = model.net_g, model.net_g.lif
    model.feed_data(batch)
    with torch.no_grad():
        net.eval()
        resting = net(model.lq)
        charged = net(model.lq)  # the first forward's membranes carry over
        net.train()
    assert not torch.equal(charged, resting) and torch.is_tensor(lif.v)
    model.test()
    assert torch.equal(model.output, resting)
    assert isinstance(lif.v, float) and lif.v == 0.
    model.test()
    assert torch.equal(model.output, resting)


def test_ema_copies_batch_norm_statistics(tmp_path, data_root):
    options = snn_options(tmp_path, data_root, ema_decay=0.9)
    model = build_model(options)
    initial = {name: buffer.clone() for name, buffer in model.net_g_ema.named_buffers()}
    assert any('running_mean' in name for name in initial)
    train(model, training_batch(options), 3)
    ema_buffers = dict(model.net_g_ema.named_buffers())
    for name, buffer in model.net_g.named_buffers():
        assert torch.equal(ema_buffers[name], buffer)
        if name.endswith(('running_mean', 'running_var')):
            assert not torch.equal(ema_buffers[name], initial[name]), name
    net_params = dict(model.net_g.named_parameters())
    assert any(not torch.equal(net_params[name], ema) for name, ema in model.net_g_ema.named_parameters())


def test_validation_logs_psnr_and_firing_rates_per_level(tmp_path, data_root):
    options = snn_options(tmp_path, data_root)
    model = build_model(options)
    train(model, training_batch(options), 1)
    tb_logger = ScalarRecorder()
    with captured_log() as log:
        model.validation(validation_loader(options), 1, tb_logger=tb_logger, save_img=False)
    text = '\n'.join(log)
    assert re.search(r'# psnr: +\d+\.\d+', text)
    rates = re.search(r'Firing rates on tiny_val: mean ([\d.]+), encoder1 ([\d.]+), .*decoder1 ([\d.]+)', text)
    assert rates and all(0 <= float(rate) <= 1 for rate in rates.groups())
    assert {'firing_rate/tiny_val/mean', 'firing_rate/tiny_val/encoder1', 'firing_rate/tiny_val/decoder1',
            'metrics/tiny_val/psnr'} <= set(tb_logger.scalars)
    assert tb_logger.scalars['firing_rate/tiny_val/mean'] == (pytest.approx(float(rates.group(1)), abs=1e-4), 1)


def test_saving_validation_images_without_suffix(tmp_path, data_root):
    options = snn_options(tmp_path, data_root)
    options.update(is_train=False, name='snn_test')
    options['val'].update(save_img=True)
    options['val'].pop('suffix', None)
    model = build_model(options)
    model.validation(validation_loader(options), 0, tb_logger=None, save_img=True)
    saved = (Path(options['path']['visualization']) / 'tiny_val').glob('*_snn_test.png')
    assert len(list(saved)) == 4


@pytest.mark.parametrize('model_type', ['SNNModel', 'DistillSNNModel'])
def test_data_parallel_is_refused_in_one_line(tmp_path, data_root, model_type):
    """``num_gpu: auto`` on a machine with two GPUs, started without torchrun: one line naming the fix."""
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'two_gpus', model_type=model_type,
                                                            teacher_path=tmp_path / 'none.pth'))
    options['num_gpu'] = 2
    with pytest.raises(ValueError) as error:
        build_model(options)
    message = str(error.value)
    assert message == (f'{model_type} does not support DataParallel (num_gpu: 2 without a launcher): start with '
                       'torchrun --nproc_per_node=N ... --launcher pytorch, or set num_gpu: 1')

"""train.rate_opt: a penalty on the mean firing rate above a target, recorded in the training forward."""
import pytest
import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn

from basicsr_snn.analysis import FiringRateMonitor
from basicsr_snn.losses.firing_rate_loss import FiringRateLoss
from snn_options import build_model, in_process_options, training_batch, training_options


class ConvLIF(nn.Module):
    """conv -> LIF over 4 steps of the same input: (B, 1, H, W) -> spikes (4, B, 4, H, W)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lif = neuron.LIFNode(v_threshold=0.1, step_mode='m')
        nn.init.constant_(self.conv.bias, 0.1)

    def forward(self, x):
        return self.lif(self.conv(x).unsqueeze(0).repeat(4, 1, 1, 1, 1))


def rate_and_penalty(net, images, penalty):
    functional.reset_net(net)
    with FiringRateMonitor(net, keep_graph=True) as monitor:
        spikes = net(images)
    rate = monitor.mean_rate_tensor()
    assert rate.item() == pytest.approx(spikes.float().mean().item())
    return rate, penalty(rate)


def test_penalty_is_zero_under_the_target_and_lowers_rates_over_it():
    torch.manual_seed(0)
    net, images = ConvLIF(), torch.rand(2, 1, 8, 8)
    rate, loss = rate_and_penalty(net, images, FiringRateLoss(target=1.0, loss_weight=1.0))
    assert 0.05 < rate.item() < 0.95 and loss.item() == 0
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in net.parameters())

    penalty = FiringRateLoss(target=0.0, loss_weight=1.0)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.02)
    rates = []
    for _ in range(5):
        optimizer.zero_grad()
        rate, loss = rate_and_penalty(net, images, penalty)
        assert loss.item() == pytest.approx(rate.item()) and loss.item() > 0
        loss.backward()
        assert net.conv.weight.grad.abs().sum() > 0
        optimizer.step()
        rates.append(rate.item())
    assert all(later < earlier for earlier, later in zip(rates, rates[1:]))


def test_monitor_without_graph_still_detaches():
    net = ConvLIF()
    with FiringRateMonitor(net) as monitor:
        net(torch.rand(1, 1, 8, 8))
    assert not monitor.mean_rate_tensor().requires_grad


def test_snn_model_logs_l_rate_from_the_training_forward(tmp_path, data_root):
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'rate',
                                                            rate_opt={'target': 0.0, 'loss_weight': 0.5}))
    model = build_model(options)
    forwards = []
    model.get_bare_model(model.net_g).register_forward_hook(lambda *args: forwards.append(1))
    model.feed_data(training_batch(options))
    model.optimize_parameters(1)
    assert len(forwards) == 1  # no second forward pass for the rates
    assert set(model.log_dict) == {'l_pix', 'l_fft', 'l_rate', 'firing_rate'}
    assert model.log_dict['l_rate'] == pytest.approx(0.5 * model.log_dict['firing_rate'], rel=1e-5)


@pytest.mark.parametrize('rate_opt, message', [
    ({'target': 0.1, 'weight': 1.0}, r"train.rate_opt: unknown key\(s\) \['weight'\]"),
    ({'target': 2}, r'train.rate_opt.target must be a number >= 0 and <= 1, got 2'),
    ({'loss_weight': -1}, r'train.rate_opt.loss_weight must be a number >= 0'),
])
def test_bad_rate_options_name_the_key(tmp_path, data_root, rate_opt, message):
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'rate_bad', rate_opt=rate_opt))
    with pytest.raises(ValueError, match=message):
        build_model(options)


def test_rate_budget_needs_spiking_neurons(tmp_path, data_root):
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'rate_ann',
                                                            rate_opt={'target': 0.1}))
    options['network_g'] = {'type': 'SpikerIRReLU', 'in_ch': 3, 'out_ch': 3, 'dim': 4, 'attention': False}
    with pytest.raises(ValueError, match='has no spiking neuron'):
        build_model(options)

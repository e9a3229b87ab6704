"""Quantization-aware training (weight_bits, act_bits), batch-norm folding and the integer reference forward."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from spikingjelly.activation_based import functional
import torch.nn.functional as F
from torch import nn

import basicsr_snn  # noqa: F401  (registers the archs)
from basicsr_snn.archs.integer_reference import integer_forward, integer_layers
from basicsr_snn.archs.quantization import (input_bits_of, quantize_input, quantize_weights, trained_weight,
                                            weight_bits_of, weight_quantizer)
from basicsr_snn.archs.spikerir_arch import SpikerIR
from basicsr_snn.archs.spikerir_relu_arch import SpikerIRReLU
from basicsr_snn.models.snn_model import build_network_from_options
from basicsr_snn.utils.checkpoint import load_weights
from test_benchmarks import run_script

EXPORT_INT8 = Path(__file__).resolve().parents[1] / 'scripts' / 'export_int8.py'
TINY = dict(in_ch=1, out_ch=1, dim=4)


def calibrated(net, images, steps=3):
    """``net`` after a few training-mode forwards (observers and batch-norm statistics set), its batch norms
    given scales of both signs and offsets, in eval mode."""
    net.train()
    with torch.no_grad():
        for _ in range(steps):
            net(images)
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                module.weight.mul_(torch.linspace(-2., 3., channels))
                module.bias.add_(torch.linspace(-0.05, 0.05, channels))
    return net.eval()


@pytest.mark.parametrize('bits, levels', [(8, 127), (4, 7)])
@pytest.mark.parametrize('make_layer, axis', [(lambda: nn.Conv2d(3, 5, 3), 0),
                                              (lambda: nn.ConvTranspose2d(3, 5, 2, stride=2), 1),
                                              (lambda: nn.Linear(6, 4), 0)])
def test_fake_quantized_weights_lie_on_a_per_channel_integer_grid(bits, levels, make_layer, axis):
    torch.manual_seed(0)
    conv = quantize_weights(make_layer(), bits)
    weight, original = conv.weight.detach(), trained_weight(conv).detach()
    dims = [d for d in range(weight.dim()) if d != axis]
    scale = original.abs().amax(dim=dims, keepdim=True) / levels
    steps = weight / scale
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert steps.round().abs().amax() == levels  # the largest weight of every channel sits on the top level
    assert steps.round().abs().amax(dim=dims).eq(levels).all()
    assert (weight - original).abs().max() <= scale.max() / 2 + 1e-7
    assert weight_bits_of(conv) == bits and input_bits_of(conv) is None


def test_straight_through_gradient_reaches_the_trained_weights():
    torch.manual_seed(0)
    conv = quantize_weights(nn.Conv2d(2, 3, 3, padding=1), 8)
    x = torch.randn(1, 2, 6, 6)
    conv(x).square().sum().backward()
    plain = nn.Conv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        plain.weight.copy_(conv.weight)
        plain.bias.copy_(conv.bias)
    plain(x).square().sum().backward()
    # the gradient with respect to the float weight is that with respect to its quantized value
    assert torch.allclose(conv.parametrizations.weight.original.grad, plain.weight.grad)


def test_input_quantizer_calibrates_in_training_and_freezes_in_eval():
    conv = quantize_input(nn.Conv2d(1, 1, 1, bias=False), 8)
    conv.train()
    conv(torch.linspace(0, 2, 50).view(1, 1, 5, 10))
    scale = float(conv.input_quant.scale)
    assert scale == pytest.approx(2 / 255, rel=1e-5) and int(conv.input_quant.zero_point) == 0
    conv.eval()
    conv(torch.linspace(0, 10, 50).view(1, 1, 5, 10))  # eval: no recalibration, values clipped
    assert float(conv.input_quant.scale) == scale and input_bits_of(conv) == 8


@pytest.mark.parametrize('arch', [SpikerIR, SpikerIRReLU])
def test_quantization_aware_training_lowers_the_loss(arch):
    torch.manual_seed(0)
    net = arch(**TINY, weight_bits=4, act_bits=8, attention=False)
    clean = torch.rand(2, 1, 16, 16)
    noisy = clean + 0.1 * torch.randn_like(clean)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        loss = (net(noisy) - clean).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        assert trained_weight(net.encoder1[0].conv1).grad.abs().sum() > 0  # through the STE and the neurons
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])


def test_reset_net_still_resets_a_quantized_student():
    torch.manual_seed(0)
    net = SpikerIR(**TINY, T=2, weight_bits=8, act_bits=8, attention=False).eval()
    image = torch.rand(1, 1, 16, 16)
    first = net(image)
    neurons = [m for m in net.modules() if hasattr(m, 'v') and hasattr(m, 'spike_levels')]
    assert any(torch.is_tensor(n.v) and n.v.abs().sum() > 0 for n in neurons)
    functional.reset_net(net)
    assert all(not torch.is_tensor(n.v) or n.v.abs().sum() == 0 for n in neurons)
    assert torch.equal(net(image), first)


def test_folding_batch_norm_then_quantizing_equals_the_fake_quantized_forward():
    torch.manual_seed(0)
    net = calibrated(SpikerIR(**TINY, weight_bits=8, act_bits=8), torch.rand(2, 1, 16, 16))
    layers = integer_layers(net)
    counts = torch.randint(0, 9, (1, 2, 4, 8, 8)).float()  # (T, B, C, H, W) spike counts
    for name, conv, norm in [('encoder1.0.conv1', net.encoder1[0].conv1, net.encoder1[0].norm1),
                             ('down1.1', net.down1[1], net.down1[2])]:
        folded = layers[name]
        assert folded.folded_norm is not None and folded.weight.dtype == torch.int8
        # the integers of the fake-quantized training weights, times the sign of the norm's scale
        own_integers, _ = weight_quantizer(conv).integers(trained_weight(conv))
        sign = norm.weight.detach().sign().view(-1, 1, 1, 1)
        assert torch.equal(folded.weight, (own_integers * sign).to(torch.int8))
        with torch.no_grad():
            expected = norm(conv(counts)).double()  # fake-quantized conv, then the batch norm
            weight = folded.weight.double() * folded.weight_scale.double().view(-1, 1, 1, 1)
            bias = folded.bias.double() * folded.scale() / 2**folded.bias_shift
            refolded = F.conv2d(counts.flatten(0, 1).double(), weight, bias, conv.stride, conv.padding)
        assert torch.allclose(refolded, expected.flatten(0, 1), atol=1e-5)


@pytest.mark.parametrize('arch, options', [(SpikerIR, dict(weight_bits=8, act_bits=8)),
                                           (SpikerIRReLU, dict(weight_bits=8, act_bits=8)),
                                           (SpikerIR, dict(weight_bits=4, act_bits=8, T=2))])
def test_integer_reference_forward_equals_the_fake_quantized_network(arch, options):
    torch.manual_seed(0)
    images = torch.rand(2, 1, 20, 20)
    net = calibrated(arch(**TINY, **options), images).double()
    layers = integer_layers(net)
    assert set(layers) == {name for name, m in net.named_modules() if weight_bits_of(m)}
    with torch.no_grad():
        fake_quantized = net(images.double())
    integer = integer_forward(net, layers, images.double())
    assert (integer - fake_quantized).abs().max() < 1e-6
    assert (fake_quantized - images.double()).abs().mean() > 1e-3  # the network does something
    # the reference really computes on its own integers: corrupting one weight changes the output
    layers['head'].weight[0].zero_()
    assert (integer_forward(net, layers, images.double()) - fake_quantized).abs().max() > 1e-4


def test_integer_export_refuses_float_inputs_and_weights():
    images = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match='act_bits 8'):
        net = calibrated(SpikerIR(**TINY, weight_bits=8), images)
        integer_forward(net, integer_layers(net), images)
    with pytest.raises(ValueError, match='weight_bits 8 or 4'):
        integer_layers(SpikerIR(**TINY, act_bits=8))


def test_export_int8_script_writes_integers_and_prints_the_difference(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        cv2.imwrite(str(images / f'{index}.png'), rng.integers(0, 256, (20, 24), dtype=np.uint8))
    torch.manual_seed(0)
    arch = {'type': 'SpikerIR', **TINY, 'weight_bits': 8, 'act_bits': 8}
    net = calibrated(build_network_from_options({'network_g': dict(arch)}, 'network_g'), torch.rand(2, 1, 16, 16))
    torch.save({'params': net.state_dict()}, tmp_path / 'net_g.pth')
    out = tmp_path / 'int8'
    result = run_script(EXPORT_INT8, '--arch', json.dumps(arch), '--ckpt', tmp_path / 'net_g.pth', '--images',
                        images, '--out', out)
    difference = float(result.stdout.split('max abs difference:')[1].split()[0])
    assert difference < 1e-6
    exported = torch.load(out / 'int8_layers.pt')
    assert exported['head']['weight'].dtype == torch.int8 and exported['head']['bias_int32'].dtype == torch.int32
    assert exported['encoder1.0.conv1']['folded_norm'] == 'encoder1.0.norm1'
    assert json.loads((out / 'export.json').read_text())['max_abs_difference'] == pytest.approx(difference, rel=1e-2)


@pytest.mark.parametrize('key, value, choices', [('weight_bits', 3, '(None, 8, 4)'),
                                                 ('weight_bits', '8', '(None, 8, 4)'),
                                                 ('act_bits', 4, '(None, 8)'), ('act_bits', True, '(None, 8)')])
@pytest.mark.parametrize('arch', ['SpikerIR', 'SpikerIRReLU'])
def test_bad_bit_widths_are_refused_with_the_key_named(arch, key, value, choices):
    with pytest.raises(ValueError) as error:
        build_network_from_options({'network_g': {'type': arch, key: value}}, 'network_g')
    message = str(error.value)
    # SpikerIR names network_g.<key>; SpikerIRReLU, which passes it on through **kwargs, network_g (type): <key>
    assert 'network_g' in message and f'{key} must be one of {choices}' in message and '\n' not in message


def test_checkpoints_reload_and_float_weights_initialise_a_quantized_network(tmp_path):
    torch.manual_seed(0)
    images = torch.rand(1, 1, 16, 16)
    quantized = calibrated(SpikerIR(**TINY, weight_bits=8, act_bits=8), images)
    torch.save({'params': quantized.state_dict()}, tmp_path / 'quantized.pth')
    reloaded = SpikerIR(**TINY, weight_bits=8, act_bits=8)
    load_weights(reloaded, tmp_path / 'quantized.pth')  # strict: the quantizers' buffers are in the checkpoint
    assert torch.equal(reloaded.eval()(images), quantized(images))

    plain = SpikerIR(**TINY)
    torch.save({'params': plain.state_dict()}, tmp_path / 'float.pth')
    with pytest.raises(ValueError, match='missing keys'):
        load_weights(SpikerIR(**TINY, weight_bits=8, act_bits=8), tmp_path / 'float.pth')
    twin_initialised = SpikerIR(**TINY, weight_bits=8, act_bits=8)
    report = load_weights(twin_initialised, tmp_path / 'float.pth', strict=False)
    assert not report.unexpected and all('quant' in key or 'observer' in key for key in report.missing)
    assert torch.equal(trained_weight(twin_initialised.head), plain.head.weight)
    assert torch.equal(trained_weight(twin_initialised.up1[1]), plain.up1[1].weight)

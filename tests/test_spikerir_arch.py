"""SpikerIR (spiking UNet student) and SpikerIRReLU (its same-architecture ANN twin)."""
import pytest
import torch
from spikingjelly.activation_based import neuron as sj_neuron
from torch import nn

import basicsr_snn  # noqa: F401  (registers the archs)
from basicsr.utils.registry import ARCH_REGISTRY
from basicsr_snn.archs.arch_utils import pad_to_multiple
from basicsr_snn.archs.spikerir_arch import SPIKERIR_PRESETS, SpikerIR
from basicsr_snn.archs.spikerir_relu_arch import SpikerIRReLU
from parameter_counts import spikerir_params

PRESETS_AND_CHANNELS = [(preset, channels) for preset in sorted(SPIKERIR_PRESETS) for channels in (1, 3)]
# the binary neurons (the multi-level default has its own tests in test_ilif_neuron.py)
TINY = dict(dim=4, T=2, neuron='lif')


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def spiking_neurons(model):
    return [m for m in model.modules() if isinstance(m, sj_neuron.BaseNode)]


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_registered():
    assert ARCH_REGISTRY.get('SpikerIR') is SpikerIR
    assert ARCH_REGISTRY.get('SpikerIRReLU') is SpikerIRReLU


@pytest.mark.parametrize('preset, channels', PRESETS_AND_CHANNELS)
@pytest.mark.parametrize('shortcut', ['membrane', 'spike'])
def test_preset_parameter_counts_follow_the_layers(preset, channels, shortcut):
    options = SPIKERIR_PRESETS[preset]
    model = SpikerIR(in_ch=channels, out_ch=channels, shortcut=shortcut, **options)
    assert count_params(model) == spikerir_params(channels, options['dim'], shortcut=shortcut)


@pytest.mark.parametrize('T, attention', [(1, True), (8, True), (4, False)])
def test_only_the_attention_depends_on_T(T, attention):
    model = SpikerIR(in_ch=1, out_ch=1, T=T, attention=attention)
    assert count_params(model) == spikerir_params(1, 5, T=T, attention=attention)


def test_defaults_are_the_small_preset():
    small = SpikerIR(in_ch=1, out_ch=1, **SPIKERIR_PRESETS['small'])
    # worked by hand at T = 1: embed 55, levels 49,600, downs 9,590, ups 4,270, head 46
    assert count_params(SpikerIR(in_ch=1, out_ch=1)) == count_params(small) == 63_561
    # the paper's T = 4 adds 2 (T^2 - 1) temporal-attention weights in each of the 7 blocks
    assert count_params(SpikerIR(in_ch=1, out_ch=1, neuron='lif')) == 63_771


def test_default_neuron_is_multi_level_at_one_step_and_binary_neurons_default_to_four():
    default = SpikerIR(in_ch=1, out_ch=1, dim=4)
    neurons = {type(m).__name__ for m in default.modules() if hasattr(m, 'v_threshold')}
    assert (default.T, default.spike_levels, neurons) == (1, 8, {'ILIFNode'})
    for neuron in ('lif', 'plif', 'if'):
        binary = SpikerIR(in_ch=1, out_ch=1, dim=4, neuron=neuron)
        assert (binary.T, binary.spike_levels) == (4, 1)
    assert SpikerIR(in_ch=1, out_ch=1, dim=4, T=3).T == 3
    assert SpikerIR(in_ch=1, out_ch=1, dim=4, neuron='lif', T=2).T == 2


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('size', [(64, 64), (481, 321), (17, 23)])
@pytest.mark.parametrize('arch', [SpikerIR, SpikerIRReLU])
def test_output_has_the_input_shape(arch, channels, size):
    model = arch(in_ch=channels, out_ch=channels).eval()
    x = torch.rand(1, channels, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_padding_reflects_and_falls_back_to_replication_for_tiny_images():
    x = torch.arange(17 * 23, dtype=torch.float32).view(1, 1, 17, 23)
    padded = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 24, 24)
    assert torch.equal(padded[..., :17, :23], x)
    assert torch.equal(padded[..., 17, :23], x[..., 15, :])  # reflection about the last row
    tiny = torch.rand(1, 2, 3, 5)
    padded = pad_to_multiple(tiny, 8)
    assert torch.equal(padded[..., 7, :5], tiny[..., 2, :])  # too small to reflect: replicate
    assert pad_to_multiple(padded, 8) is padded
    assert SpikerIR(in_ch=2, out_ch=2, **TINY)(tiny).shape == tiny.shape


@pytest.mark.parametrize('arch', [SpikerIR, SpikerIRReLU])
def test_backward_fills_every_gradient(arch):
    model = arch(in_ch=1, out_ch=1)
    x = torch.rand(2, 1, 24, 24)
    (model(x) - x).abs().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    'options',
    [{}, dict(neuron='plif'),
     dict(neuron='if', surrogate='sigmoid'),
     dict(detach_reset=True, surrogate_alpha=3.)])
def test_every_spiking_neuron_outputs_binary_spikes(options):
    model = SpikerIR(in_ch=3, out_ch=3, **dict(TINY, **options))
    outputs = []
    hooks = [m.register_forward_hook(lambda mod, args, out: outputs.append(out)) for m in spiking_neurons(model)]
    model(torch.rand(2, 3, 20, 20))
    assert len(outputs) == len(hooks) == 2 * 7 + 3 + 3  # 2 per block, one per down/up-sampling
    for spikes in outputs:
        assert spikes.shape[0] == TINY['T']
        assert ((spikes == 0) | (spikes == 1)).all()
    assert sum(float(s.detach().sum()) for s in outputs) > 0


def test_spiking_neurons_follow_the_options():
    lif = spiking_neurons(SpikerIR(**TINY))[0]
    assert isinstance(lif, sj_neuron.LIFNode)
    assert (lif.tau, lif.v_threshold, lif.v_reset, lif.decay_input) == (2., 0.15, 0., False)
    assert lif.step_mode == 'm'
    assert isinstance(spiking_neurons(SpikerIR(**dict(TINY, neuron='plif')))[0], sj_neuron.ParametricLIFNode)
    assert isinstance(spiking_neurons(SpikerIR(**dict(TINY, neuron='if')))[0], sj_neuron.IFNode)
    assert spiking_neurons(SpikerIR(tau=3., v_threshold=0.5, **TINY))[0].tau == 3.
    assert not spiking_neurons(SpikerIRReLU(dim=4, T=2))
    assert any(isinstance(m, nn.ReLU) for m in SpikerIRReLU(dim=4, T=2).modules())


@pytest.mark.parametrize('train', [False, True])
def test_forward_twice_gives_identical_outputs(train):
    model = SpikerIR(in_ch=1, out_ch=1, **TINY).train(train)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)


def test_two_training_steps_in_a_row():
    model = SpikerIR(in_ch=1, out_ch=1, **TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, gt = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    weight = model.encoder1[0].conv1.weight
    before = weight.detach().clone()
    losses = []
    for _ in range(2):
        loss = (model(x) - gt).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert not torch.equal(weight, before)


@pytest.mark.parametrize('train', [False, True])
def test_first_layer_once_equals_the_naive_direct_encoding(train):
    model = SpikerIR(in_ch=3, out_ch=3, dim=4, T=4).train(train)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        fast = model(x)
        model._encode = lambda padded: model.embed(padded.unsqueeze(0).repeat(model.T, 1, 1, 1, 1))
        naive = model(x)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)


def test_rate_encoding_feeds_spikes_to_the_first_conv():
    model = SpikerIR(in_ch=1, out_ch=1, encoding='rate', **TINY)
    inputs = []
    model.embed[0].register_forward_hook(lambda mod, args, out: inputs.append(args[0]))
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert first.shape == x.shape
    assert inputs[0].shape == (TINY['T'], 2, 1, 16, 16)
    assert ((inputs[0] == 0) | (inputs[0] == 1)).all()
    assert not torch.equal(first, second)  # fresh Bernoulli draws at every call


@pytest.mark.parametrize('with_attention', [True, False])
def test_level_outputs_have_the_documented_shapes(with_attention):
    dim, steps = 4, 3
    model = SpikerIR(in_ch=1, out_ch=1, dim=dim, T=steps, attention=with_attention, enc_blocks=[1, 2, 0])
    shapes = {}
    for name in SpikerIR.level_names:
        model.get_submodule(name).register_forward_hook(
            lambda mod, args, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
    model(torch.rand(1, 1, 17, 23))  # padded to 24 x 24
    widths = {
        'encoder1': dim,
        'encoder2': 2 * dim,
        'encoder3': 4 * dim,
        'latent': 8 * dim,
        'decoder3': 4 * dim,
        'decoder2': 2 * dim,
        'decoder1': dim
    }
    sides = {'1': 24, '2': 12, '3': 6, 't': 3}
    for name, width in widths.items():
        side = sides[name[-1]]
        assert shapes[name] == (steps, 1, width, side, side), name
    assert len(model.encoder2) == 2 and len(model.encoder3) == 0


def test_relu_twin_has_the_same_conv_and_linear_shapes():

    def weight_shapes(model):
        return {
            f'{path}.weight': tuple(m.weight.shape)
            for path, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear))
        }

    for steps in (1, 4):
        options = dict(in_ch=3, out_ch=3, T=steps)
        snn_shapes = weight_shapes(SpikerIR(**options))
        assert weight_shapes(SpikerIRReLU(**options)) == snn_shapes
        assert len(snn_shapes) > 40
    # the student's option dict builds the twin; only the temporal attention depends on T
    twin, student = SpikerIRReLU(in_ch=1, out_ch=1), SpikerIR(in_ch=1, out_ch=1, neuron='lif')  # T = 4
    assert twin.T == 1
    differing = {k for k, shape in weight_shapes(twin).items() if weight_shapes(student)[k] != shape}
    assert differing and all('.attention.ta.' in key for key in differing)
    assert count_params(student) - count_params(twin) == 7 * 2 * (4 * 4 - 1)


@pytest.mark.parametrize('options, key', [
    (dict(T=0), 'T'),
    (dict(T=2.5), 'T'),
    (dict(neuron='relu'), 'neuron'),
    (dict(neuron='lifx'), 'neuron'),
    (dict(surrogate='erf'), 'surrogate'),
    (dict(encoding='poisson'), 'encoding'),
    (dict(tau=1.), 'tau'),
    (dict(v_threshold=0.), 'v_threshold'),
    (dict(dim=0), 'dim'),
    (dict(enc_blocks=[1, 1]), 'enc_blocks'),
    (dict(dec_blocks=[1, -1, 1]), 'dec_blocks'),
    (dict(latent_blocks=-1), 'latent_blocks'),
    (dict(in_ch=1, out_ch=3), 'out_ch'),
    (dict(attention='yes'), 'attention'),
])
def test_invalid_options_name_the_option(options, key):
    with pytest.raises(ValueError, match=rf'^{key} '):
        SpikerIR(**options)


def test_invalid_choices_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"\('lif', 'plif', 'if', 'ilif'\)"):
        SpikerIR(neuron='alif')
    with pytest.raises(ValueError, match=r"neuron must be one of \('relu',\)"):
        SpikerIRReLU(neuron='lif')


@pytest.mark.parametrize('shortcut', ['membrane', 'spike'])
@pytest.mark.parametrize('size', [(20, 20), (17, 29), (8, 8)])
def test_block_and_sampling_convolutions_read_spikes_the_others_analog_values(shortcut, size):
    model = SpikerIR(in_ch=1, out_ch=1, **TINY, shortcut=shortcut)
    inputs = {}
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    for name, module in convs:
        module.register_forward_pre_hook(lambda mod, args, name=name: inputs.setdefault(name, args[0]))
    output = model(torch.rand(2, 1, *size))
    assert output.shape == (2, 1, *size)
    assert len(inputs) == len(convs)
    # the encoding layer reads the image, the head the mean over T, each attention pooled values (its second
    # MLP layers read ReLU outputs, which may all be 0)
    analog = {name for name in inputs if name.startswith(('embed', 'head')) or '.attention.' in name}
    first_analog = {'embed.0', 'head'} | {f'{level}.0.attention.{part}' for level in model.level_names
                                          for part in ('ta.sharedMLP.0', 'ca.sharedMLP.0', 'sa.conv')}
    assert first_analog <= analog
    for name, value in inputs.items():
        binary = bool(((value == 0) | (value == 1)).all())
        assert binary if name not in analog else (not binary or name not in first_analog), name


def test_membrane_shortcut_adds_the_analog_input_unchanged():
    model = SpikerIR(in_ch=1, out_ch=1, **TINY, attention=False)
    block = model.encoder1[0]
    assert block.identity_shortcut and not hasattr(block, 'shortcut_conv')
    x = torch.randn(TINY['T'], 2, TINY['dim'], 8, 8)
    main = block.norm2(block.conv2(block.neuron2(block.norm1(block.conv1(block.neuron1(x))))))
    block.neuron1.reset()
    block.neuron2.reset()
    torch.testing.assert_close(block(x), main + x)


def test_spike_shortcut_output_depends_on_spikes_only():
    block = SpikerIR(in_ch=1, out_ch=1, **TINY, attention=False, shortcut='spike').encoder1[0]
    block.eval()
    x = torch.full((TINY['T'], 1, TINY['dim'], 4, 4), 0.5)  # fires at every step (threshold 0.15)
    first = block(x)
    block.neuron1.reset()
    block.neuron2.reset()
    torch.testing.assert_close(block(x * 3), first)  # same spikes, same output


def test_twin_takes_the_shortcut_option():
    twin = SpikerIRReLU(in_ch=1, out_ch=1, dim=4, shortcut='spike')
    assert not twin.encoder1[0].identity_shortcut
    assert SpikerIRReLU(in_ch=1, out_ch=1, dim=4).encoder1[0].identity_shortcut

"""The multi-level I-LIF neuron (ILIFNode), SpikerIR(neuron='ilif') and its spike-driven (binary) inference."""
import copy

import pytest
import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

import basicsr_snn  # noqa: F401  (registers the archs)
from basicsr_snn.archs.ilif_neuron import ILIFNode
from basicsr_snn.archs.spike_expansion import spike_fed_conv
from basicsr_snn.archs.spikerir_arch import SpikerIR
from basicsr_snn.archs.spikerir_relu_arch import SpikerIRReLU
from basicsr_snn.models.snn_model import build_network_from_options
from basicsr_snn.utils.checkpoint import load_weights
from basicsr_snn.utils.hooks import evaluating
from snn_options import build_model, in_process_options, training_batch, training_options, write_teacher_checkpoint
from pipeline_utils import write_paired_folder

TINY_ILIF = dict(in_ch=1, out_ch=1, dim=4, neuron='ilif', attention=False)


pytestmark = pytest.mark.usefixtures('neuron_backend_as_configured')  # see conftest.py

@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def ilif_nodes(model):
    return [m for m in model.modules() if isinstance(m, ILIFNode)]


def spike_fed_convs(model):
    """Every convolution after the encoding layer, outside the attention gates: the ones neurons feed."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.modules.conv._ConvNd) and not name.startswith(('embed', 'head'))
            and '.attention.' not in name]


@pytest.mark.parametrize('levels', [1, 3, 8])
def test_counts_are_integers_in_range_and_follow_the_rule_at_one_step(levels):
    node = ILIFNode(spike_levels=levels, v_threshold=0.5, step_mode='m')
    x = torch.linspace(-1, 0.5 * levels + 1, 301).reshape(1, 1, 301)
    counts = node(x)
    assert torch.equal(counts, counts.round()) and counts.min() == 0 and counts.max() == levels
    # by hand: h / v_th = 2x, rounded (ties to even), clipped to [0, D]; the membrane keeps the rest
    assert torch.equal(counts, (2 * x).round().clamp(0, levels))
    assert torch.allclose(node.v, x[0] - 0.5 * counts[0])


def test_recurrence_soft_reset_and_reset_net():
    node = ILIFNode(spike_levels=4, tau=2., v_threshold=1., step_mode='m')
    x = torch.tensor([[2.7], [0.0], [1.2], [9.0]])
    # by hand: h1 = 2.7 -> 3, v 1 = -0.3; h2 = -0.15 -> 0; h3 = -0.075 + 1.2 = 1.125 -> 1, v 0.125;
    # h4 = 0.0625 + 9 -> 4 (clipped), v 5.0625
    assert node(x).flatten().tolist() == [3., 0., 1., 4.]
    assert node.v.item() == pytest.approx(5.0625)
    functional.reset_net(node)
    assert node.v == 0.
    single = ILIFNode(spike_levels=4, tau=2., v_threshold=1., step_mode='s')
    assert [single(step).item() for step in x] == [3., 0., 1., 4.]


@pytest.mark.parametrize('backend', ['spikingjelly', 'fused'])
def test_gradient_is_straight_through_inside_the_range(backend):
    node = ILIFNode(spike_levels=4, v_threshold=0.5, step_mode='m', neuron_backend=backend)
    x = torch.tensor([[-0.3, 0.1, 0.9, 1.9, 2.4]]).repeat(2, 1).requires_grad_()
    x.data[1] = 0.  # second step: no input, the membrane alone
    node(x)[0].sum().backward()
    # h / v_th = -0.6, 0.2, 1.8, 3.8, 4.8: d count / dh = 1 / v_th inside [0, 4], 0 outside
    assert x.grad[0].tolist() == pytest.approx([0., 2., 2., 2., 0.])


@pytest.mark.parametrize('T', [1, 2])
def test_fused_kernel_equals_spikingjelly(T):
    x = (torch.randn(T, 2, 3, 8, 8) * 0.6).requires_grad_()
    weights = torch.randn(T, 2, 3, 8, 8)
    results = []
    for backend in ('spikingjelly', 'fused'):
        node = ILIFNode(spike_levels=3, v_threshold=0.3, step_mode='m', neuron_backend=backend)
        counts = node(x)
        grad, = torch.autograd.grad((counts * weights).sum() + node.v.sum(), x)
        results.append((counts, node.v, grad))
    for spikingjelly_value, fused_value in zip(*results):
        assert torch.allclose(spikingjelly_value, fused_value, atol=1e-6)
    assert results[0][0].max() == 3


@pytest.mark.parametrize(('options', 'message'), [
    (dict(spike_levels=0), r'^spike_levels must be an integer >= 1, got 0'),
    (dict(spike_levels=2.5), r'^spike_levels must be an integer >= 1, got 2.5'),
    (dict(T=0), r'^T must be an integer >= 1'),
    (dict(T=1.5), r'^T must be an integer >= 1'),
    (dict(surrogate_alpha=2.), r'^surrogate_alpha does not apply to neuron: ilif'),
    (dict(neuron='lif', spike_levels=4), r'^spike_levels applies to neuron: ilif'),
    (dict(spike_inference='bits'), r"^spike_inference must be one of \('counts', 'binary'\)"),
])
def test_bad_values_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        SpikerIR(**dict(TINY_ILIF, **options))


def test_network_options_reach_every_neuron_and_the_twin_ignores_them():
    model = SpikerIR(**TINY_ILIF, T=2, spike_levels=3, tau=3., v_threshold=0.2)
    nodes = ilif_nodes(model)
    assert len(nodes) == 2 * 7 + 3 + 3 and model.spike_levels == 3
    assert {(n.spike_levels, n.tau, n.v_threshold, n.step_mode) for n in nodes} == {(3, 3., 0.2, 'm')}
    assert SpikerIR(**TINY_ILIF).spike_levels == 8  # the documented default D
    assert SpikerIR(in_ch=1, out_ch=1, spike_levels=1).spike_levels == 1  # binary neurons accept D = 1
    twin = SpikerIRReLU(**dict(TINY_ILIF, neuron='relu'), spike_levels=3)
    assert not ilif_nodes(twin)
    binary_twin = SpikerIRReLU(**dict(TINY_ILIF, neuron='relu'), spike_levels=3, spike_inference='binary')
    binary_twin.load_state_dict(twin.state_dict())
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():  # analog activations are not expanded: the same network
        assert torch.equal(binary_twin(x), twin(x))


@pytest.mark.parametrize(('T', 'size'), [(1, (20, 20)), (1, (17, 29)), (2, (8, 8))])
def test_any_input_size_emits_counts_up_to_d(T, size):
    model = SpikerIR(**TINY_ILIF, T=T, spike_levels=4, v_threshold=0.05)
    outputs = []
    hooks = [m.register_forward_hook(lambda mod, args, out: outputs.append(out)) for m in ilif_nodes(model)]
    assert model(torch.rand(2, 1, *size)).shape == (2, 1, *size)
    assert len(outputs) == len(hooks)
    counts = torch.cat([out.detach().flatten() for out in outputs])
    assert torch.equal(counts, counts.round()) and counts.min() == 0 and counts.max() == 4


def test_spike_fed_conv_of_binary_maps_equals_the_conv_of_counts():
    conv = layer.Conv2d(3, 2, 3, padding=1, bias=False, step_mode='m')
    counts = torch.randint(0, 5, (2, 1, 3, 6, 6)).float()
    assert counts.max() == 4
    assert torch.allclose(spike_fed_conv(conv, counts, 4), conv(counts), atol=1e-5)
    assert torch.equal(spike_fed_conv(conv, counts, 0), conv(counts))
    with pytest.raises(ValueError, match='no bias'):
        spike_fed_conv(layer.Conv2d(3, 2, 1, step_mode='m'), counts, 4)


@pytest.mark.parametrize(('T', 'levels', 'shortcut'), [(1, 4, 'membrane'), (2, 2, 'spike'), (1, 8, 'membrane')])
def test_binary_inference_equals_counts_and_every_spike_fed_conv_reads_zeros_and_ones(T, levels, shortcut):
    counts_net = SpikerIR(**dict(TINY_ILIF, attention=True), T=T, spike_levels=levels, v_threshold=0.05,
                          shortcut=shortcut)
    x = torch.rand(2, 1, 20, 12)
    with torch.no_grad():  # training-mode batch norms: pre-activations spread over the whole count range
        expected = counts_net(x)
    # a student checkpoint loads into the binary mode: the same state dict
    binary_net = SpikerIR(**dict(TINY_ILIF, attention=True), T=T, spike_levels=levels, v_threshold=0.05,
                          shortcut=shortcut, spike_inference='binary')
    binary_net.load_state_dict(copy.deepcopy(counts_net.state_dict()))
    inputs = {}
    convs = spike_fed_convs(binary_net)
    for name, conv in convs:
        conv.register_forward_pre_hook(lambda mod, args, name=name: inputs.setdefault(name, args[0]))
    with torch.no_grad():
        binary_out = binary_net(x)
    assert torch.allclose(binary_out, expected, atol=1e-5)
    assert len(inputs) == len(convs) == 2 * 7 + 3 + 3 + (7 if shortcut == 'spike' else 0)
    for name, value in inputs.items():
        assert value.shape[0] == T * levels, name
        assert ((value == 0) | (value == 1)).all(), name
    # and the counts mode really fed counts above 1 to those convolutions
    seen = []
    for _, conv in spike_fed_convs(counts_net):
        conv.register_forward_pre_hook(lambda mod, args: seen.append(args[0].max()))
    with torch.no_grad():
        counts_net(x)
    assert 1 < max(seen) <= levels
    assert torch.allclose(counts_net.set_spike_inference('binary')(x), expected, atol=1e-5)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_paired_folder(tmp_path_factory.mktemp('ilif_data'), count=4, size=24, channels=3)


@pytest.mark.parametrize('model_type', ['SNNModel', 'DistillSNNModel'])
@pytest.mark.parametrize('network', [dict(T=1, spike_levels=4), dict(T=2, spike_levels=2),
                                     dict(T=1, spike_levels=4, spike_inference='binary')])
def test_trains_in_the_models(tmp_path, data_root, model_type, network):
    teacher = write_teacher_checkpoint(tmp_path / 'teacher.pth') if model_type == 'DistillSNNModel' else None
    options = training_options(tmp_path, data_root, f'ilif_{model_type}', model_type=model_type, total_iter=3,
                               teacher_path=teacher)
    options['network_g'].update(neuron='ilif', **network)
    model = build_model(in_process_options(tmp_path, options))
    assert ilif_nodes(model.net_g)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    batch = training_batch(options)
    losses = []
    for step in range(1, 4):
        model.feed_data(batch)
        model.optimize_parameters(step)
        losses.append(sum(float(v) for k, v in model.get_current_log().items() if k.startswith('l_')))
    assert losses[-1] < losses[0]
    changed = [not torch.equal(a, p) for a, p in zip(before, model.net_g.parameters())]
    assert sum(changed) > len(changed) // 2


def test_a_trained_student_checkpoint_loads_into_binary_inference(tmp_path, data_root):
    options = training_options(tmp_path, data_root, 'ilif_checkpoint', total_iter=2)
    options['network_g'].update(neuron='ilif', T=1, spike_levels=4, v_threshold=0.05)
    model = build_model(in_process_options(tmp_path, options))
    batch = training_batch(options)
    for step in (1, 2):
        model.feed_data(batch)
        model.optimize_parameters(step)
    model.save(0, 2)
    checkpoint = tmp_path / 'experiments' / 'ilif_checkpoint' / 'models' / 'net_g_2.pth'
    binary_net = build_network_from_options({'network_g': dict(options['network_g'], spike_inference='binary')},
                                            'network_g')
    report = load_weights(binary_net, checkpoint, strict=True)
    assert not (report.missing or report.unexpected or report.mismatched)
    with evaluating(model.net_g) as trained, evaluating(binary_net) as binary:
        expected, restored = trained(batch['lq']), binary(batch['lq'])
    assert torch.allclose(restored, expected, atol=1e-5)
    assert binary.spike_inference == 'binary' and trained.spike_inference == 'counts'

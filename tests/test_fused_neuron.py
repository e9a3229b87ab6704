"""The fused CPU neuron: spikes, membranes and gradients equal to spikingjelly's; backend choice."""
import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from basicsr_snn.archs import fused_neuron
from basicsr_snn.archs.fused_neuron import FusedIFNode, FusedLIFNode, FusedParametricLIFNode, uses_fused_kernel
from basicsr_snn.archs.ilif_neuron import ILIFNode
from basicsr_snn.archs.spikerir_arch import SpikerIR
from neuron_probe import neuron_kernels, ran_fused_kernel

CASES = {
    'lif-atan': (neuron.LIFNode, FusedLIFNode, dict(tau=2., decay_input=False), surrogate.ATan, False),
    'lif-sigmoid-detached': (neuron.LIFNode, FusedLIFNode, dict(tau=3., decay_input=False), surrogate.Sigmoid, True),
    'if-atan': (neuron.IFNode, FusedIFNode, {}, surrogate.ATan, False),
    'plif-atan': (neuron.ParametricLIFNode, FusedParametricLIFNode, dict(init_tau=2.5, decay_input=False),
                  surrogate.ATan, False),
}


pytestmark = pytest.mark.usefixtures('neuron_backend_as_configured')  # see conftest.py

def run(node, x_seq, grad_spikes):
    x = x_seq.clone().requires_grad_(True)
    functional.reset_net(node)
    node.zero_grad()
    spikes = node(x)
    v = node.v.detach().clone()
    (spikes * grad_spikes).sum().backward()
    parameter_grads = [p.grad.clone() for p in node.parameters()]
    return spikes.detach(), v, x.grad, parameter_grads, ran_fused_kernel(spikes)


@pytest.mark.parametrize('case', sorted(CASES))
def test_fused_equals_spikingjelly(case):
    reference_type, fused_type, options, surrogate_type, detach_reset = CASES[case]
    common = dict(v_threshold=0.15, v_reset=0., surrogate_function=surrogate_type(), detach_reset=detach_reset,
                  step_mode='m', **options)
    torch.manual_seed(0)
    x_seq = torch.randn(4, 2, 3, 9, 7) * 0.2
    grad_spikes = torch.randn_like(x_seq)
    reference = run(reference_type(**common), x_seq, grad_spikes)
    fused_node = fused_type(neuron_backend='fused', **common)
    assert uses_fused_kernel('fused', x_seq)
    fused = run(fused_node, x_seq, grad_spikes)
    assert fused[4] and not reference[4]  # else spikingjelly would be compared with itself
    assert torch.equal(fused[0], reference[0]) and 0 < fused[0].mean() < 1
    torch.testing.assert_close(fused[1], reference[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(fused[2], reference[2], rtol=0, atol=1e-6)
    assert len(fused[3]) == len(reference[3])
    for fused_grad, reference_grad in zip(fused[3], reference[3]):
        torch.testing.assert_close(fused_grad, reference_grad, rtol=1e-5, atol=1e-6)


def test_one_compiled_variant_serves_layers_of_every_shape():
    from torch._dynamo.utils import counters
    node = FusedLIFNode(neuron_backend='fused', tau=2., decay_input=False, v_threshold=0.15, v_reset=0.,
                        surrogate_function=surrogate.ATan(), step_mode='m')

    def forward_and_backward(shape):
        functional.reset_net(node)
        x = (torch.randn(shape) * 0.3).requires_grad_(True)
        spikes = node(x)
        spikes.sum().backward()
        assert ran_fused_kernel(spikes) and x.grad.shape == x.shape

    forward_and_backward((4, 2, 3, 9, 7))  # compiles both loops at T = 4, or finds them compiled
    compiled = counters['stats']['unique_graphs']
    for shape in ((4, 5, 6), (4, 1, 8, 2, 2), (4, 3, 16), (4, 2, 3, 9)):
        forward_and_backward(shape)
    assert counters['stats']['unique_graphs'] == compiled


def test_spikerir_trains_the_same_with_either_backend():
    torch.manual_seed(0)
    image = torch.rand(2, 1, 12, 12)
    results = []
    for backend in ('spikingjelly', 'fused'):
        torch.manual_seed(1)
        net = SpikerIR(in_ch=1, out_ch=1, dim=4, T=2, neuron_backend=backend)
        with neuron_kernels(net) as kernels:
            output = net(image)
        assert kernels[backend] == 20 and sum(kernels.values()) == 20  # 2 per block of 7 levels, 3 downs, 3 ups
        output.square().mean().backward()
        results.append((output.detach(), {name: p.grad for name, p in net.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=1e-6)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_backend_choice(monkeypatch):
    small, large = torch.zeros(2, 4), torch.zeros(fused_neuron.FUSED_MIN_ELEMENTS)
    assert not uses_fused_kernel('auto', small) and not uses_fused_kernel('spikingjelly', large)
    assert uses_fused_kernel('auto', large) and not uses_fused_kernel('auto', large.double())
    monkeypatch.setenv('BASICSR_SNN_NEURON_BACKEND', 'spikingjelly')
    assert FusedLIFNode(neuron_backend='fused', step_mode='m', decay_input=False).neuron_backend == 'spikingjelly'
    monkeypatch.setenv('BASICSR_SNN_NEURON_BACKEND', 'cuda')
    with pytest.raises(ValueError, match=r"\$BASICSR_SNN_NEURON_BACKEND must be one of \('auto', 'fused', "):
        SpikerIR(neuron_backend='auto')
    monkeypatch.delenv('BASICSR_SNN_NEURON_BACKEND')
    with pytest.raises(ValueError, match=r"neuron_backend must be one of \('auto', 'fused', 'spikingjelly'\)"):
        SpikerIR(neuron_backend='triton')
    with pytest.raises(ValueError, match='decay_input=False'):
        FusedLIFNode(step_mode='m')


@pytest.mark.parametrize('make_node', [
    lambda: ILIFNode(spike_levels=4, tau=2., v_threshold=0.15, step_mode='m', neuron_backend='fused'),
    lambda: FusedLIFNode(neuron_backend='fused', tau=2., decay_input=False, v_threshold=0.15, v_reset=0.,
                         surrogate_function=surrogate.ATan(), step_mode='m'),
], ids=['ilif', 'lif'])
def test_a_fused_neuron_continues_from_the_membrane_of_its_previous_call(make_node):
    """``node(x[:2])`` then ``node(x[2:])`` without a reset is ``node(x)``: the kernel starts from the membrane ``v``
    that the earlier call left (a kernel that started from rest would pass every other test)."""
    torch.manual_seed(0)
    x = (torch.rand(4, 2, 8, 64, 64) * 0.3).requires_grad_(True)
    assert uses_fused_kernel('auto', x[2:])  # above the threshold: what `auto` runs too
    node = make_node()
    functional.reset_net(node)
    whole, whole_v = node(x), node.v.detach().clone()
    functional.reset_net(node)
    first = node(x[:2])
    carried = node.v.detach().clone()
    second = node(x[2:])
    assert ran_fused_kernel(first) and ran_fused_kernel(second) and ran_fused_kernel(whole)
    assert carried.abs().sum() > 0  # the second call has a membrane to continue from
    assert torch.equal(torch.cat([first, second]), whole) and 0 < float(whole.detach().mean())
    torch.testing.assert_close(node.v.detach(), whole_v, rtol=0, atol=1e-6)

"""Which spiking neurons ran the fused kernel: the autograd node their output comes from says so."""
import contextlib
from collections import Counter

from spikingjelly.activation_based import neuron

from basicsr_snn.archs.fused_neuron import _FusedNeuron

FUSED_NODE = f'{_FusedNeuron.__name__}Backward'


def ran_fused_kernel(output):
    """True when ``output`` (a neuron's spikes, computed with gradients) came from the fused kernel."""
    return type(output.grad_fn).__name__ == FUSED_NODE


@contextlib.contextmanager
def neuron_kernels(net):
    """Counts ``{'fused': n, 'spikingjelly': m}`` of the forwards of ``net``'s spiking neurons while open.

    Only forwards with gradients tell the two apart (the kernel is an autograd function).
    """
    counts = Counter()

    def record(module, inputs, output):
        counts['fused' if ran_fused_kernel(output) else 'spikingjelly'] += 1

    handles = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, neuron.BaseNode)]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()

"""Which spiking neurons ran the fused kernel: the autograd node their output comes from says so."""
import contextlib
from collections import Counter

from spikingjelly.activation_based import neuron

from basicsr_snn.archs.fused_neuron import FusedILIFMultiStep, _FusedNeuron

FUSED_NODES = {f'{kernel.__name__}Backward' for kernel in (_FusedNeuron, FusedILIFMultiStep)}


def ran_fused_kernel(output):
    """True when ``output`` (a neuron's spikes or counts, computed with gradients) came from a fused kernel."""
    return type(output.grad_fn).__name__ in FUSED_NODES


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

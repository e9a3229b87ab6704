"""SpikerIRReLU: SpikerIR with ReLU in place of every spiking neuron (the same-architecture ANN)."""
from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_snn.archs.spikerir_arch import SpikerIR


@ARCH_REGISTRY.register()
class SpikerIRReLU(SpikerIR):
    """The ANN twin of :class:`SpikerIR`: same modules, names and conv/linear shapes, ReLU neurons.

    This is the "same-architecture ANN" of the paper's energy comparison and a non-spiking
    baseline. It accepts every SpikerIR option, so a student's network options can be reused by
    changing ``type`` only; the spiking-only ones (tau, detach_reset, surrogate,
    surrogate_alpha, neuron_backend, spike_levels, spike_inference) have no effect, and ``v_threshold`` only sets the initial batch-norm scale
    as in the student. ``weight_bits`` quantizes as in the student; ``act_bits: 8`` quantizes the input of every
    conv / linear layer, all of which read analog values here: with ``weight_bits: 8`` the W8A8 ANN baseline.

    ``T`` defaults to 1: a ReLU network fed the same image at every step computes the same thing
    T times. The temporal attention's weights have T inputs, so set ``T`` to the student's value
    to load weights across the two (all other conv/linear shapes do not depend on T).

    Args:
        neuron (str): only ``'relu'``. Default: ``'relu'``.
        T (int): time steps. Default: 1.
        **kwargs: any other :class:`SpikerIR` option.
    """

    neuron_choices = ('relu', )

    def __init__(self, neuron: str = 'relu', T: int = 1, **kwargs):
        super().__init__(neuron=neuron, T=T, **kwargs)

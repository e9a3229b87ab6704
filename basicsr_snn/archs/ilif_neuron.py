"""The multi-level (integer) spiking neuron I-LIF: a count of 0..D spikes per step.

At each step the neuron charges like a LIF neuron (input not decayed), emits an integer count and
subtracts what it emitted (soft reset)::

    h[t] = (1 - 1 / tau) * v[t - 1] + x[t]
    c[t] = clamp(round(h[t] / v_threshold), 0, D)     # D = spike_levels
    v[t] = h[t] - c[t] * v_threshold

(``round`` rounds halves to even, torch's rule.) The gradient is straight-through inside the range:
``dc / dh = 1 / v_threshold`` where ``0 <= h / v_threshold <= D`` and 0 outside. At T = 1 there is
no recurrence: ``c = clamp(round(x / v_threshold), 0, D)``.

A count of ``c`` equals ``c`` binary spikes over D virtual steps, so a convolution fed by counts
equals the sum of D convolutions fed by binary spike maps (:mod:`~basicsr_snn.archs.spike_expansion`).
This is spikingjelly's ``ILIFNode`` (SpikeYOLO's I-LIF, generalised to a threshold) with D as an
integer attribute ``spike_levels`` and the project's fused CPU kernel, at T = 1 too: spikingjelly's op
runs several small ops per step, the kernel one (``scripts/bench_speed.py`` times both).
"""
import torch
from spikingjelly.activation_based import neuron, surrogate

from basicsr_snn.archs.fused_neuron import FusedILIFMultiStep, resolve_backend, uses_fused_kernel
from basicsr_snn.utils.checks import check_int, check_number


class ILIFNode(neuron.ILIFNode):
    """Integer LIF neuron, ``step_mode`` ``'s'`` (``(B, ...)``) or ``'m'`` (``(T, B, ...)``); output of the
    input's shape, float tensors of integer values in ``[0, spike_levels]``.

    Memory ``v`` (reset by ``functional.reset_net``) is the membrane after the soft reset.

    Args:
        spike_levels (int): D, the most spikes per step, >= 1 (D = 1: a binary neuron with a soft reset
            that fires from half the threshold). Default: 4.
        tau (float): membrane time constant, > 1 (used for T > 1 only). Default: 2.
        v_threshold (float): the charge one spike carries, > 0. Default: 1.
        detach_reset (bool): detach the count from the reset in backpropagation. Default: False.
        step_mode (str): ``'s'`` or ``'m'``. Default: ``'s'``.
        store_v_seq (bool): keep the membrane of every step in ``v_seq`` (multi-step). Default: False.
        neuron_backend (str): ``'auto'``, ``'fused'`` or ``'spikingjelly'`` (see
            :mod:`~basicsr_snn.archs.fused_neuron`); multi-step inputs only. Default: ``'auto'``.
    """

    def __init__(self, spike_levels: int = 4, tau: float = 2., v_threshold: float = 1., detach_reset: bool = False,
                 step_mode: str = 's', store_v_seq: bool = False, neuron_backend: str = 'auto'):
        check_int('spike_levels', spike_levels, 1)
        check_number('tau', tau, above=1)
        check_number('v_threshold', v_threshold, above=0)
        super().__init__(tau=float(tau), v_threshold=float(v_threshold),
                         surrogate_function=surrogate.MultiLevelSpikeCount(int(spike_levels)),
                         detach_reset=bool(detach_reset), step_mode=step_mode, store_v_seq=store_v_seq)
        self.spike_levels = int(spike_levels)
        self.neuron_backend = resolve_backend(neuron_backend)

    def extra_repr(self):
        return f'spike_levels={self.spike_levels}, tau={self.tau}, ' + super().extra_repr()

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        if self.store_v_seq or args or kwargs or not uses_fused_kernel(self.neuron_backend, x_seq):
            return super().multi_step_forward(x_seq, *args, **kwargs)
        v0 = self.v if torch.is_tensor(self.v) and self.v.shape == x_seq.shape[1:] else torch.zeros_like(x_seq[0])
        counts, self.v = FusedILIFMultiStep.apply(x_seq.contiguous(), v0, float(self.tau), float(self.v_threshold),
                                                  self.spike_levels, self.detach_reset)
        return counts

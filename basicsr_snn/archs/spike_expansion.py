"""Spike-driven inference of multi-level neurons: a count of ``c`` spikes is ``c`` binary spikes.

A neuron that emits integer counts ``c`` in ``[0, D]`` per step (:class:`~basicsr_snn.archs.ilif_neuron.ILIFNode`)
feeds a bias-free convolution ``W``. Written as D binary maps ``s_d = [c > d]`` (``d = 0..D-1``; a
thermometer code), ``W c = sum_d W s_d``: the convolution of counts equals the sum of D convolutions
of binary spike maps, each of which only accumulates weights where a spike arrived. In
``'binary'`` mode every spike-fed convolution of the network runs that way (spikingjelly's
``SpikeCountToBinary`` -> the convolution -> ``TemporalBinSum``), so its input holds only 0 and 1:
what a spike-driven chip would receive. The outputs equal the ``'counts'`` mode's up to the order
of float additions; the work is D times that of the counts mode on a CPU or GPU.
"""
import torch
from spikingjelly.activation_based.layer import SpikeCountToBinary, TemporalBinSum
from torch import nn

from basicsr_snn.utils.checks import check_choice, check_int

SPIKE_INFERENCE_MODES = ('counts', 'binary')


def spike_fed_conv(conv: nn.Module, counts: torch.Tensor, slots: int) -> torch.Tensor:
    """``conv(counts)`` for a multi-step bias-free ``conv`` and counts ``(T, B, C, H, W)`` in ``[0, slots]``.

    ``slots = 0`` convolves the counts themselves; ``slots = D >= 1`` expands every step into D binary
    maps, convolves the ``(T * D, B, C, H, W)`` maps and sums each step's D results.
    """
    if slots == 0:
        return conv(counts)
    if getattr(conv, 'bias', None) is not None:
        raise ValueError('a spike-fed convolution expanded into binary maps must have no bias (it would count D times)')
    return TemporalBinSum(slots, always_convert=True)(conv(SpikeCountToBinary(slots, always_convert=True)(counts)))


class SpikeFed:
    """Mixin of the blocks whose convolutions read spikes: :meth:`spike_fed` runs one such convolution in
    the block's mode, ``spike_slots`` (0: counts as they are; D: D binary maps per step)."""
    spike_slots = 0

    def spike_fed(self, conv: nn.Module, counts: torch.Tensor) -> torch.Tensor:
        return spike_fed_conv(conv, counts, self.spike_slots)

    def conv_norm_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(convolution, the batch norm right after it)`` of every spike-fed convolution of the block."""
        raise NotImplementedError


def set_spike_inference(net: nn.Module, mode: str, levels: int) -> nn.Module:
    """Put every :class:`SpikeFed` block of ``net`` in ``mode`` (``'counts'`` or ``'binary'``, see the module
    docstring) for neurons of ``levels`` (D) spikes per step; returns ``net``. Weights are untouched, so a
    checkpoint of either mode loads into the other."""
    check_choice('spike_inference', mode, SPIKE_INFERENCE_MODES)
    check_int('spike_levels', levels, 1)
    for module in net.modules():
        if isinstance(module, SpikeFed):
            module.spike_slots = levels if mode == 'binary' else 0
    return net

"""Building blocks of the spiking UNet (``SpikerIR``) and of its ReLU twin.

Every block works in spikingjelly's multi-step mode: tensors are sequences ``(T, B, C, H, W)``
and stateless layers fold time into the batch. Blocks receive a :class:`NeuronSpec` that says
which neuron to build, so the same construction code gives the spiking network and, with
``neuron='relu'``, the same-architecture ANN used for energy comparisons.

Where the spikes go: every convolution of the residual blocks (both 3x3 and the 1x1 shortcut) and
of the down- and up-sampling is fed by a neuron's output, so in the spiking network all of them
are spike-driven (accumulates, no multiplies). Multi-level neurons feed integer counts; in the
``'binary'`` spike-inference mode (:mod:`~basicsr_snn.archs.spike_expansion`) each count tensor is
expanded into binary maps first, so every such convolution reads 0s and 1s. Analog inputs are
confined to the network's encoding layer and output head, the attention (whose small convolutions
read pooled analog values) and the additions: the membrane shortcuts and the skips between levels.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch
from spikingjelly.activation_based import layer, surrogate
from torch import nn

from basicsr_snn.archs.fused_neuron import (NEURON_BACKENDS, FusedIFNode, FusedLIFNode, FusedParametricLIFNode,
                                            resolve_backend)
from basicsr_snn.archs.ilif_neuron import ILIFNode
from basicsr_snn.archs.spike_expansion import SpikeFed
from basicsr_snn.utils.checks import check_choice, check_int, check_number

BINARY_NEURONS = ('lif', 'plif', 'if')
SPIKING_NEURONS = BINARY_NEURONS + ('ilif', )
#: D of ``neuron: ilif`` when ``spike_levels`` is not given
DEFAULT_SPIKE_LEVELS = 8
SURROGATES = {'atan': surrogate.ATan, 'sigmoid': surrogate.Sigmoid}
SHORTCUTS = ('membrane', 'spike')


@dataclass(frozen=True)
class NeuronSpec:
    """What neuron every block builds, checked once at construction.

    Args:
        neuron (str): ``'lif'``, ``'plif'`` (learnable tau), ``'if'`` (no leak), ``'ilif'`` (multi-level:
            0..spike_levels spikes per step, :class:`~basicsr_snn.archs.ilif_neuron.ILIFNode`), or
            ``'relu'`` for the non-spiking twin. Default: ``'lif'``.
        tau (float): membrane time constant of LIF and I-LIF / initial one of PLIF; must exceed 1.
            Ignored by IF and ReLU. Default: 2.
        v_threshold (float): firing threshold; also sets the initial scale of the
            threshold-dependent batch norms (for ReLU it only sets that scale). Default: 0.15.
        detach_reset (bool): detach the reset from the graph (spikingjelly option). Default: False.
        surrogate (str): surrogate gradient, ``'atan'`` or ``'sigmoid'``; I-LIF has its own
            (straight-through) and ignores it. Default: ``'atan'``.
        surrogate_alpha (float | None): sharpness of the surrogate; None keeps spikingjelly's
            default (2 for atan, 4 for sigmoid); I-LIF refuses any other value. Default: None.
        backend (str): ``'auto'``, ``'fused'`` or ``'spikingjelly'``: where the multi-step neurons
            run in one compiled CPU kernel (:mod:`~basicsr_snn.archs.fused_neuron`). Default: ``'auto'``.
        spike_levels (int | None): D, the most spikes an I-LIF neuron emits per step, >= 1; None:
            :data:`DEFAULT_SPIKE_LEVELS`. The binary neurons emit at most one and refuse anything but
            None or 1; ReLU ignores it. Default: None.

    Binary neurons follow ESDNet: the input is not divided by tau (``decay_input=False``) and
    the membrane is hard-reset to 0 after a spike. I-LIF charges the same way and subtracts what it
    emitted (soft reset).
    """
    neuron: str = 'lif'
    tau: float = 2.
    v_threshold: float = 0.15
    detach_reset: bool = False
    surrogate: str = 'atan'
    surrogate_alpha: Optional[float] = None
    backend: str = 'auto'
    spike_levels: Optional[int] = None

    def __post_init__(self):
        check_choice('neuron', self.neuron, SPIKING_NEURONS + ('relu', ))
        check_choice('neuron_backend', self.backend, NEURON_BACKENDS)
        resolve_backend(self.backend)
        check_choice('surrogate', self.surrogate, tuple(SURROGATES))
        if self.neuron in ('lif', 'plif', 'ilif'):
            check_number('tau', self.tau, above=1)
        check_number('v_threshold', self.v_threshold, above=0)
        check_number('surrogate_alpha', self.surrogate_alpha, above=0, allow_none=True)
        if self.spike_levels is not None:
            check_int('spike_levels', self.spike_levels, 1)
        if self.neuron in BINARY_NEURONS and self.spike_levels not in (None, 1):
            raise ValueError(f'spike_levels applies to neuron: ilif; a {self.neuron} neuron emits at most one spike '
                             f'per step: leave spike_levels out or set it to 1 (got {self.spike_levels!r})')
        if self.neuron == 'ilif' and self.surrogate_alpha is not None:
            raise ValueError(f'surrogate_alpha does not apply to neuron: ilif (its gradient is straight-through); '
                             f'leave it out (got {self.surrogate_alpha!r})')

    @property
    def levels(self) -> int:
        """D: the most spikes per step of the neurons this spec builds (1 for the binary ones)."""
        if self.neuron == 'ilif':
            return DEFAULT_SPIKE_LEVELS if self.spike_levels is None else self.spike_levels
        return 1

    def build(self):
        """A new multi-step neuron module (or ``nn.ReLU``), applied to ``(T, B, C, H, W)``."""
        if self.neuron == 'relu':
            return nn.ReLU()
        if self.neuron == 'ilif':
            return ILIFNode(spike_levels=self.levels, tau=self.tau, v_threshold=self.v_threshold,
                            detach_reset=self.detach_reset, step_mode='m', neuron_backend=self.backend)
        alpha = {} if self.surrogate_alpha is None else {'alpha': self.surrogate_alpha}
        common = dict(
            v_threshold=self.v_threshold,
            v_reset=0.,
            surrogate_function=SURROGATES[self.surrogate](**alpha),
            detach_reset=self.detach_reset,
            step_mode='m',
            neuron_backend=self.backend)
        if self.neuron == 'lif':
            return FusedLIFNode(tau=self.tau, decay_input=False, **common)
        if self.neuron == 'plif':
            return FusedParametricLIFNode(init_tau=float(self.tau), decay_input=False, **common)
        return FusedIFNode(**common)

    def norm(self, channels, alpha=1.):
        """Threshold-dependent batch norm (statistics over time and batch), weight alpha * v_th.

        Use ``alpha = 1 / sqrt(2)`` for the two branches summed at a residual junction, as the
        tdBN paper prescribes, so the sum keeps the scale of a single branch.
        """
        return layer.ThresholdDependentBatchNorm2d(alpha=alpha, v_th=self.v_threshold, num_features=channels)


class ElementwiseAdd(nn.Module):
    """``a + b``: a residual or skip addition, one accumulate per output element.

    A module rather than a bare ``+`` so that forward hooks see it: the energy estimate counts
    its additions (:func:`basicsr_snn.analysis.analyse_energy`).
    """

    def forward(self, a, b):
        return a + b


def conv3x3(in_channels, out_channels, stride=1):
    return layer.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, step_mode='m')


def conv1x1(in_channels, out_channels):
    return layer.Conv2d(in_channels, out_channels, 1, bias=False, step_mode='m')


def multi_dimensional_attention(T, channels, channel_reduction=4):
    """spikingjelly's temporal -> channel -> spatial attention (MA-SNN) for ``(T, B, C, H, W)``.

    The temporal MLP keeps T hidden units (its weights therefore depend on T); the channel MLP
    squeezes C by ``channel_reduction`` but keeps at least two hidden units where C allows, since
    a single ReLU unit that starts dead never receives a gradient. The output is
    ``relu(x * gates)``, analog.
    """
    reduction_c = max(1, min(channel_reduction, channels // 2))
    return layer.MultiDimensionalAttention(T=T, C=channels, reduction_t=1, reduction_c=reduction_c, kernel_size=3)


class SpikingResidualBlock(SpikeFed, nn.Module):
    """Spiking residual block: ``(T, B, C_in, H, W) -> (T, B, C_out, H, W)``, analog output.

    ``s = neuron(x)``; main branch ``conv3x3 -> tdBN -> neuron -> conv3x3 -> tdBN`` on ``s``,
    rescaled by the attention gates when there is attention. The shortcut added to it:

    * ``'membrane'``: ``x`` itself, the block's analog input (MS-ResNet's membrane shortcut), so
      analog information passes the block instead of being re-quantised to spikes; where the
      widths differ, ``conv1x1 -> tdBN`` of the spikes ``s`` instead. The addition costs one
      accumulate per element.
    * ``'spike'``: ``conv1x1 -> tdBN`` of the spikes ``s``: the output depends on spikes only.

    Either way the block's 3x3 and 1x1 convolutions read spikes, never analog values; only the
    attention's convolutions read analog ones.

    Args:
        in_channels (int), out_channels (int): widths.
        spec (NeuronSpec): the neurons to build.
        attention (nn.Module | None): multi-step module applied to the main branch.
        shortcut (str): ``'membrane'`` or ``'spike'``. Default: ``'membrane'``.
    """

    def __init__(self, in_channels, out_channels, spec, attention=None, shortcut='membrane'):
        super().__init__()
        check_choice('shortcut', shortcut, SHORTCUTS)
        self.neuron1 = spec.build()
        self.conv1 = conv3x3(in_channels, out_channels)
        self.norm1 = spec.norm(out_channels)
        self.neuron2 = spec.build()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.norm2 = spec.norm(out_channels, alpha=1 / math.sqrt(2))
        self.attention = attention
        self.residual_add = ElementwiseAdd()
        self.identity_shortcut = shortcut == 'membrane' and in_channels == out_channels
        if not self.identity_shortcut:
            self.shortcut_conv = conv1x1(in_channels, out_channels)
            self.shortcut_norm = spec.norm(out_channels, alpha=1 / math.sqrt(2))

    def forward(self, x):
        spikes = self.neuron1(x)
        out = self.norm2(self.spike_fed(self.conv2, self.neuron2(self.norm1(self.spike_fed(self.conv1, spikes)))))
        if self.attention is not None:
            out = self.attention(out)
        if self.identity_shortcut:
            return self.residual_add(out, x)
        return self.residual_add(out, self.shortcut_norm(self.spike_fed(self.shortcut_conv, spikes)))

    def conv_norm_pairs(self):
        pairs = [(self.conv1, self.norm1), (self.conv2, self.norm2)]
        return pairs if self.identity_shortcut else pairs + [(self.shortcut_conv, self.shortcut_norm)]


class SpikingLevel(nn.Sequential):
    """``num_blocks`` residual blocks of one width: ``(T, B, C, H, W) -> (T, B, C, H, W)``.

    With ``attention``, every block rescales its main branch with
    :func:`multi_dimensional_attention` (whose temporal weights need ``T``); ``shortcut`` is
    the blocks' shortcut (see :class:`SpikingResidualBlock`).
    """

    def __init__(self, channels, num_blocks, spec, T, attention, shortcut='membrane'):
        super().__init__(*[
            SpikingResidualBlock(channels, channels, spec,
                                 multi_dimensional_attention(T, channels) if attention else None, shortcut)
            for _ in range(num_blocks)
        ])


class _SpikeFedSequential(SpikeFed, nn.Sequential):
    """``neuron -> spike-fed conv -> norm`` (modules 0, 1, 2)."""

    def forward(self, x):
        neuron, conv, norm = self
        return norm(self.spike_fed(conv, neuron(x)))

    def conv_norm_pairs(self):
        return [(self[1], self[2])]


class SpikingDownsample(_SpikeFedSequential):
    """``neuron -> conv3x3 stride 2 -> tdBN``: ``(T, B, C_in, H, W) -> (T, B, C_out, H/2, W/2)``."""

    def __init__(self, in_channels, out_channels, spec):
        super().__init__(spec.build(), conv3x3(in_channels, out_channels, stride=2), spec.norm(out_channels))


class SpikingUpsample(_SpikeFedSequential):
    """``neuron -> 2x2 transposed conv stride 2 -> tdBN``: ``(T, B, C_in, H, W) -> (T, B, C_out, 2H, 2W)``.

    A stride-2 2x2 transposed convolution equals a 1x1 convolution followed by a pixel shuffle:
    each output pixel reads one input pixel, so spikes stay spikes up to the accumulation.
    """

    def __init__(self, in_channels, out_channels, spec):
        super().__init__(spec.build(),
                         layer.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False, step_mode='m'),
                         spec.norm(out_channels))


def rate_encode(x, T):
    """Bernoulli spikes ``(T, B, C, H, W)`` firing with probability ``clamp(x, 0, 1)``, drawn anew at each step."""
    return torch.bernoulli(x.clamp(0, 1).unsqueeze(0).expand(T, *x.shape))

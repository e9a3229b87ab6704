"""SpikerIR: the spiking U-shaped encoder-decoder student of H-KD (arXiv 2504.01755)."""
from collections.abc import Sequence

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from spikingjelly.activation_based import functional, layer
from torch import nn

from basicsr_snn.archs.arch_utils import pad_to_multiple
from basicsr_snn.archs.quantization import ACT_BITS, WEIGHT_BITS, check_bits, quantize_network
from basicsr_snn.archs.spike_expansion import SPIKE_INFERENCE_MODES, SpikeFed, set_spike_inference
from basicsr_snn.archs.spiking_blocks import (SHORTCUTS, ElementwiseAdd, NeuronSpec, SpikingDownsample,
                                              SpikingLevel, SpikingUpsample, rate_encode)
from basicsr_snn.utils.checks import check_bool, check_choice, check_int

SPIKERIR_PRESETS = {
    # near the 0.07M parameters the paper states for its student
    'small': dict(dim=5, enc_blocks=(1, 1, 1), latent_blocks=1, dec_blocks=(1, 1, 1)),
    # near DnCNN's size (0.56M parameters)
    'medium': dict(dim=14, enc_blocks=(1, 1, 1), latent_blocks=1, dec_blocks=(1, 1, 1)),
    # the 48/96/192/384 widths the paper also states
    'base': dict(dim=48, enc_blocks=(1, 1, 1), latent_blocks=1, dec_blocks=(1, 1, 1)),
}
ENCODINGS = ('direct', 'rate')
# time steps where T is left out: a multi-level count carries in one step what binary spikes carry in
# about four (the gap study, docs/results.md); a ReLU network computes the same thing at every step
DEFAULT_T = {'ilif': 1, 'lif': 4, 'plif': 4, 'if': 4, 'relu': 1}


def _check_block_counts(key, counts):
    if not isinstance(counts, (list, tuple)) or len(counts) != 3:
        raise ValueError(f'{key} must be a list of 3 block counts (levels 1, 2, 3), got {counts!r}')
    for count in counts:
        check_int(key, count, 0)


@ARCH_REGISTRY.register()
class SpikerIR(nn.Module):
    """Spiking UNet for image restoration (spikingjelly multi-step mode).

    Three encoder levels, a bottleneck and three decoder levels; level k has width
    ``dim * 2**(k-1)`` (level 4 is the bottleneck). The image is padded (reflect) to a multiple
    of 8, encoded into T steps, processed, decoded by the mean over T and added to the input
    (global residual), then cropped back: any input size works.

    Module names (stable, for feature hints) and their outputs for an input ``(B, in_ch, H, W)``,
    with ``H8, W8 = H, W`` rounded up to multiples of 8; ``(T, B, ...)`` are multi-step sequences
    of analog values (spikes live inside the blocks):

    ==========  =====================================  ================================
    module      output shape                           role
    ==========  =====================================  ================================
    embed       (T, B, dim, H8, W8) or (1, B, ...)     3x3 conv + tdBN on the encoded
                                                       input; (1, B, ...) for direct
                                                       encoding (computed once)
    encoder1    (T, B, dim, H8, W8)                    level 1
    down1       (T, B, 2*dim, H8/2, W8/2)
    encoder2    (T, B, 2*dim, H8/2, W8/2)              level 2
    down2       (T, B, 4*dim, H8/4, W8/4)
    encoder3    (T, B, 4*dim, H8/4, W8/4)              level 3
    down3       (T, B, 8*dim, H8/8, W8/8)
    latent      (T, B, 8*dim, H8/8, W8/8)              bottleneck (level 4)
    up3         (T, B, 4*dim, H8/4, W8/4)              its output + encoder3 -> decoder3
    decoder3    (T, B, 4*dim, H8/4, W8/4)
    up2         (T, B, 2*dim, H8/2, W8/2)              its output + encoder2 -> decoder2
    decoder2    (T, B, 2*dim, H8/2, W8/2)
    up1         (T, B, dim, H8, W8)                    its output + encoder1 -> decoder1
    decoder1    (T, B, dim, H8, W8)
    head        (B, out_ch, H8, W8)                    3x3 conv of decoder1's mean over
                                                       T (= the mean of the conv over T,
                                                       computed once); + input, crop
    ==========  =====================================  ================================

    Each level is a sequence of :class:`SpikingResidualBlock` (neuron -> 3x3 conv -> tdBN,
    twice, plus a shortcut), each optionally with spikingjelly's multi-dimensional attention.
    The default membrane shortcut adds the block's analog input unchanged, so the embedded
    image reaches the head through identities and skips; the spike shortcut (a 1x1 conv + tdBN
    of the block's input spikes) re-quantises everything to spikes at every block.
    Down-sampling: neuron -> stride-2 3x3 conv -> tdBN; up-sampling: neuron -> stride-2 2x2
    transposed conv -> tdBN. Skip connections add (cheaper than concatenation + 1x1 conv, and
    widths already match).

    With direct encoding the T input steps are identical, so the first conv and its tdBN
    (whose statistics over T copies equal those over one) run once on ``(1, B, ...)`` and the
    result is broadcast over T: T times fewer multiply-accumulates in the encoding conv.
    In training, tdBN's running variance uses the unbiased estimate of B*H*W instead of
    T*B*H*W values, a relative difference below 1 / (B*H*W).

    Presets (``SPIKERIR_PRESETS``; the defaults are ``'small'``), parameters with attention on,
    the membrane shortcut and the default T = 1, for gray / color in-out: ``'small'`` dim 5, one
    block per level: 63,561 / 63,743; ``'medium'`` (DnCNN's size) dim 14: 493,585 / 494,091;
    ``'base'`` dim 48: 5,783,469 / 5,785,199. The temporal attention has 2 T^2 weights per block, so
    other T change these counts slightly (T = 4, the paper's binary student: 210 more). The spike
    shortcut adds a 1x1 conv + tdBN per block (small at T = 4: 66,641 gray).

    Args:
        in_ch (int): input channels. Default: 3.
        out_ch (int): output channels; must equal in_ch (global residual). Default: 3.
        dim (int): width of level 1. Default: 5.
        enc_blocks (list[int]): residual blocks in encoder levels 1, 2, 3. Default: (1, 1, 1).
        latent_blocks (int): residual blocks in the bottleneck. Default: 1.
        dec_blocks (list[int]): residual blocks in decoder levels 1, 2, 3. Default: (1, 1, 1).
        T (int | None): time steps, >= 1; None: 1 for ``ilif``, 4 for the binary neurons (the paper's
            T). Default: None.
        neuron (str): ``'ilif'`` (multi-level: an integer count of 0..spike_levels spikes per step,
            soft reset; :class:`~basicsr_snn.archs.ilif_neuron.ILIFNode`), or ``'lif'``, ``'plif'``,
            ``'if'`` (binary spikes, hard reset; the paper's student is ``lif`` at T = 4).
            Default: ``'ilif'``.
        tau (float): membrane time constant (initial one for PLIF), > 1. Default: 2.
        v_threshold (float): firing threshold. Default: 0.15.
        detach_reset (bool): detach the reset in backpropagation. Default: False.
        surrogate (str): ``'atan'`` or ``'sigmoid'``; ``ilif`` ignores it (straight-through gradient).
            Default: ``'atan'``.
        surrogate_alpha (float | None): surrogate sharpness; None: spikingjelly's default. ``ilif``
            refuses any other value.
        attention (bool): multi-dimensional attention in every residual block. Default: True.
        encoding (str): ``'direct'`` (the image at every step) or ``'rate'`` (Bernoulli spikes
            with probability clamp(pixel, 0, 1), different at every step). Default: ``'direct'``.
        shortcut (str): residual shortcut of every block, ``'membrane'`` (identity of the analog
            input) or ``'spike'`` (1x1 conv + tdBN of the input spikes). Default: ``'membrane'``.
        neuron_backend (str): ``'auto'`` (the fused CPU kernel where it pays), ``'fused'`` or
            ``'spikingjelly'``; ``$BASICSR_SNN_NEURON_BACKEND`` overrides it. Same weights and outputs
            either way (:mod:`~basicsr_snn.archs.fused_neuron`). Default: ``'auto'``.
        spike_levels (int | None): D, the most spikes an ``ilif`` neuron emits per step, an integer
            >= 1; None: 8. The binary neurons refuse anything but None or 1. Default: None.
        spike_inference (str): how spike-fed convolutions read multi-level counts: ``'counts'`` (as
            they are) or ``'binary'`` (each count expanded into D binary maps, D convolutions summed:
            the same output, every convolution input 0 or 1; D times the work here, see
            :mod:`~basicsr_snn.archs.spike_expansion`). Same weights: a checkpoint loads either
            way; :meth:`set_spike_inference` switches. Default: ``'counts'``.
        weight_bits (int | None): quantization-aware training of the weights of every conv / linear layer: 8 or 4
            (per-output-channel symmetric fake quantization, straight-through gradient,
            :mod:`~basicsr_snn.archs.quantization`); None: float weights. Default: None.
        act_bits (int | None): 8: fake-quantize, per tensor (observers calibrated in training), the input of every
            conv / linear layer that reads analog values: the embedding conv (the image), the head (the analog
            stream) and the attention's small convolutions; the spike-fed convolutions read integer counts already,
            so the network computes on integers end to end. In :class:`SpikerIRReLU` every conv input is analog and
            quantized (a W8A8 ANN). None: float inputs. Default: None.

    The multi-level neuron (``neuron: ilif``) follows SpikeYOLO's I-LIF rather than the paper, whose
    student fires binary spikes: ``count = clamp(round(h / v_threshold), 0, D)`` with a straight-through
    gradient inside ``[0, D]``, reset by subtracting ``count * v_threshold``; at T = 1 it has no
    recurrence and acts as a (D + 1)-level activation quantiser whose output, expanded, is D binary
    spike maps. It is the default (T = 1, D = 8) because the gap study (docs/results.md) measured it
    much closer to the ReLU twin than the binary student at T = 4, at a lower total energy
    (docs/energy.md); ``neuron: lif`` (T then defaults to 4) gives the paper's student.
    """

    neuron_choices = ('lif', 'plif', 'if', 'ilif')
    level_names = ('encoder1', 'encoder2', 'encoder3', 'latent', 'decoder3', 'decoder2', 'decoder1')
    size_multiple = 8

    def __init__(self,
                 in_ch: int = 3,
                 out_ch: int = 3,
                 dim: int = 5,
                 enc_blocks: Sequence[int] = (1, 1, 1),
                 latent_blocks: int = 1,
                 dec_blocks: Sequence[int] = (1, 1, 1),
                 T: int | None = None,
                 neuron: str = 'ilif',
                 tau: float = 2.,
                 v_threshold: float = 0.15,
                 detach_reset: bool = False,
                 surrogate: str = 'atan',
                 surrogate_alpha: float | None = None,
                 attention: bool = True,
                 encoding: str = 'direct',
                 shortcut: str = 'membrane',
                 neuron_backend: str = 'auto',
                 spike_levels: int | None = None,
                 spike_inference: str = 'counts',
                 weight_bits: int | None = None,
                 act_bits: int | None = None):
        super().__init__()
        check_int('in_ch', in_ch, 1)
        if out_ch != in_ch:
            raise ValueError(f'out_ch must equal in_ch ({in_ch}) for the global residual, got {out_ch!r}')
        check_int('dim', dim, 1)
        _check_block_counts('enc_blocks', enc_blocks)
        _check_block_counts('dec_blocks', dec_blocks)
        check_int('latent_blocks', latent_blocks, 0)
        check_choice('neuron', neuron, self.neuron_choices)
        T = DEFAULT_T[neuron] if T is None else T
        check_int('T', T, 1)
        check_bool('attention', attention)
        check_choice('encoding', encoding, ENCODINGS)
        check_choice('shortcut', shortcut, SHORTCUTS)
        self.weight_bits = check_bits('weight_bits', weight_bits, WEIGHT_BITS)
        self.act_bits = check_bits('act_bits', act_bits, ACT_BITS)
        spec = NeuronSpec(neuron, tau, v_threshold, detach_reset, surrogate, surrogate_alpha, neuron_backend,
                          spike_levels)
        self.spike_levels = spec.levels
        self.spiking = spec.neuron != 'relu'
        self.T = T
        self.encoding = encoding
        widths = [dim * 2**level for level in range(4)]
        self.embed = nn.Sequential(layer.Conv2d(in_ch, dim, 3, padding=1, bias=False, step_mode='m'), spec.norm(dim))
        self.encoder1 = SpikingLevel(widths[0], enc_blocks[0], spec, T, attention, shortcut)
        self.down1 = SpikingDownsample(widths[0], widths[1], spec)
        self.encoder2 = SpikingLevel(widths[1], enc_blocks[1], spec, T, attention, shortcut)
        self.down2 = SpikingDownsample(widths[1], widths[2], spec)
        self.encoder3 = SpikingLevel(widths[2], enc_blocks[2], spec, T, attention, shortcut)
        self.down3 = SpikingDownsample(widths[2], widths[3], spec)
        self.latent = SpikingLevel(widths[3], latent_blocks, spec, T, attention, shortcut)
        self.up3 = SpikingUpsample(widths[3], widths[2], spec)
        self.decoder3 = SpikingLevel(widths[2], dec_blocks[2], spec, T, attention, shortcut)
        self.up2 = SpikingUpsample(widths[2], widths[1], spec)
        self.decoder2 = SpikingLevel(widths[1], dec_blocks[1], spec, T, attention, shortcut)
        self.up1 = SpikingUpsample(widths[1], widths[0], spec)
        self.decoder1 = SpikingLevel(widths[0], dec_blocks[0], spec, T, attention, shortcut)
        self.skip_add = ElementwiseAdd()  # the three encoder-decoder skips
        self.head = nn.Conv2d(dim, out_ch, 3, padding=1)
        # every conv of a conv_norm pair but the embedding's reads spikes (in the twin: ReLU outputs, analog)
        spike_fed = {conv for conv, _ in self.conv_norm_pairs()[1:]} if self.spiking else set()
        quantize_network(self, weight_bits, act_bits, analog_input=lambda layer: layer not in spike_fed)
        self.set_spike_inference(spike_inference)

    def conv_norm_pairs(self) -> list:
        """``(conv, batch norm after it)``: the embedding's, then every spike-fed convolution's (in ``'counts'``
        mode, the ReLU twin's convolutions at the same places); the other convolutions have no batch norm."""
        blocks = [module for module in self.modules() if isinstance(module, SpikeFed)]
        return [(self.embed[0], self.embed[1])] + [pair for block in blocks for pair in block.conv_norm_pairs()]

    def set_spike_inference(self, mode: str) -> 'SpikerIR':
        """``'counts'`` or ``'binary'`` (see ``spike_inference``); returns the network."""
        check_choice('spike_inference', mode, SPIKE_INFERENCE_MODES)
        self.spike_inference = mode
        # ReLU activations are analog: the twin convolves them as they are in either mode
        return set_spike_inference(self, mode if self.spiking else 'counts', self.spike_levels)

    def _encode(self, x):
        """Padded image ``(B, in_ch, H, W)`` -> embedded sequence ``(T, B, dim, H, W)``."""
        if self.encoding == 'direct':
            return self.embed(x.unsqueeze(0)).expand(self.T, -1, -1, -1, -1)
        return self.embed(rate_encode(x, self.T))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_ch, H, W)`` -> ``(B, out_ch, H, W)``, starting from resting neurons."""
        functional.reset_net(self)
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, self.size_multiple)
        enc1 = self.encoder1(self._encode(padded))
        enc2 = self.encoder2(self.down1(enc1))
        enc3 = self.encoder3(self.down2(enc2))
        latent = self.latent(self.down3(enc3))
        dec3 = self.decoder3(self.skip_add(self.up3(latent), enc3))
        dec2 = self.decoder2(self.skip_add(self.up2(dec3), enc2))
        dec1 = self.decoder1(self.skip_add(self.up1(dec2), enc1))
        # the mean over T of a conv equals the conv of the mean: decode once instead of T times
        restored = padded + self.head(dec1.mean(0))
        return restored[..., :height, :width]

"""AdaIR (Cui et al., ICLR 2025, arXiv 2403.14614), an all-in-one teacher of the paper.

Written from the paper: Restormer's UNet (:class:`~basicsr_snn.archs.restormer_arch.RestormerBackbone`)
with an adaptive frequency learning block at three points of the decoder: frequency mining
(the input image split into low and high frequencies by a learned mask on its spectrum, plain
``torch.fft``) and frequency modulation of the decoder features by both bands. Option, module
and parameter names follow the authors' release (``net/model.py`` of ``c-yn/AdaIR``), so that
their checkpoints load with ``strict=True`` (through ``path.strip_prefix_t: net.``, see docs/options.md).
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_snn.archs.restormer_arch import RestormerBackbone, channel_attention
from basicsr_snn.utils.checks import check_bool

ADAIR_PRESETS = {
    # the authors' configuration: 28.8M parameters
    'paper': dict(dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4, heads=(1, 2, 4, 8)),
    # for CPU demos and tests: Restormer's small preset
    'small': dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 4, 8),
                  unused_release_layers=False),
}
# The release's low-frequency band is a centred box of half-sides (side // 128) x rate (rate in
# (0, 1) learned per image): on a map under 128 pixels a side it is empty, all is "high".
MASK_SIDE_DIVISOR = 128


class ChannelCrossAttention(nn.Module):
    """MDTA's channel attention with queries from ``x`` and keys / values from ``y`` (same shape ``(B, C, H, W)``)."""

    def __init__(self, dim, num_head, bias):
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(num_head, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 3, padding=1, groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x, y):
        if x.shape != y.shape:
            raise ValueError(f'cross attention needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}')
        key, value = self.kv_dwconv(self.kv(y)).chunk(2, dim=1)
        return self.project_out(channel_attention(self.q_dwconv(self.q(x)), key, value, self.temperature))


class SpatialGate(nn.Module):
    """A per-pixel gate in (0, 1) from the channel max and mean: ``(B, C, H, W)`` -> ``(B, 1, H, W)``."""

    def __init__(self):
        super().__init__()
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x):
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
        return self.spatial(pooled).sigmoid()


class ChannelGate(nn.Module):
    """A per-channel gate in (0, 1) from the global mean and max: ``(B, C, H, W)`` -> ``(B, C, 1, 1)``."""

    def __init__(self, dim):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim, dim // 16, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(dim // 16, dim, 1, bias=False))

    def forward(self, x):
        return (self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))).sigmoid()


class FreRefine(nn.Module):
    """Frequency modulation: each band gated by the other (high by low's channels, low by high's pixels), summed."""

    def __init__(self, dim):
        super().__init__()
        self.SpatialGate = SpatialGate()  # noqa: N815 (the release's module names)
        self.ChannelGate = ChannelGate(dim)  # noqa: N815
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, low, high):
        return self.proj(low * self.SpatialGate(high) + high * self.ChannelGate(low))


class FreModule(nn.Module):
    """Adaptive frequency learning block: decoder features ``(B, dim, h, w)`` modulated by the image's bands.

    The image, resized to ``h x w`` and embedded by ``conv1``, is split into low and high
    frequencies (:meth:`split_frequencies`); each band attends to the features
    (``channel_cross_l`` / ``channel_cross_h``), the two are fused by ``frequency_refine``, the
    features attend to the fusion (``channel_cross_agg``), and the result is ``para1 * attended +
    para2 * features`` (``para1`` starts at 0: the block starts as the identity).

    Args:
        dim (int): feature channels.
        num_heads (int): heads of the three cross attentions.
        bias (bool): biases of their convolutions.
        in_dim (int): image channels.
        unused_release_layers (bool): also build ``conv`` and ``score_gen``, which the release
            defines but never calls.

    The parameters that never get a gradient are frozen (``requires_grad`` off), so that DDP
    (``find_unused_parameters: false``) does not wait for one: ``conv``, ``score_gen`` and
    ``rate_conv`` (its rates are rounded, see :meth:`low_frequency_mask`). They stay in the state
    dict, and the release's checkpoints load as before.
    """

    def __init__(self, dim, num_heads, bias, in_dim=3, unused_release_layers=True):
        super().__init__()
        if unused_release_layers:
            self.conv = nn.Conv2d(in_dim, dim, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(in_dim, dim, 3, padding=1, bias=False)
        if unused_release_layers:
            self.score_gen = nn.Conv2d(2, 2, 7, padding=3)
        self.para1 = nn.Parameter(torch.zeros(dim, 1, 1))
        self.para2 = nn.Parameter(torch.ones(dim, 1, 1))
        self.channel_cross_l = ChannelCrossAttention(dim, num_heads, bias)
        self.channel_cross_h = ChannelCrossAttention(dim, num_heads, bias)
        self.channel_cross_agg = ChannelCrossAttention(dim, num_heads, bias)
        self.frequency_refine = FreRefine(dim)
        self.rate_conv = nn.Sequential(nn.Conv2d(dim, dim // 8, 1, bias=False), nn.GELU(),
                                       nn.Conv2d(dim // 8, 2, 1, bias=False))
        for name in ('conv', 'score_gen', 'rate_conv'):
            if hasattr(self, name):
                getattr(self, name).requires_grad_(False)

    def forward(self, image, features):
        image = F.interpolate(image, features.shape[-2:], mode='bilinear', align_corners=False)
        high, low = self.split_frequencies(image)
        high = self.channel_cross_l(high, features)
        low = self.channel_cross_h(low, features)
        attended = self.channel_cross_agg(features, self.frequency_refine(low, high))
        return attended * self.para1 + features * self.para2

    def low_frequency_mask(self, embedded):
        """``(B, 1, h, w)``: 1 inside each image's centred box of the shifted spectrum, 0 outside.

        Its half-sides are ``(side // MASK_SIDE_DIVISOR) x rate``, rounded down, with two rates in
        (0, 1) per image from ``rate_conv`` on the embedding's global mean. The rounding has no
        gradient, so ``rate_conv`` keeps its initial weights in training, as in the release (it is frozen).
        """
        height, width = embedded.shape[-2:]
        rates = self.rate_conv(embedded.mean((2, 3), keepdim=True)).sigmoid()[:, :, 0, 0]

        def inside(side, rate):
            half = ((side // MASK_SIDE_DIVISOR) * rate).int()[:, None]
            positions = torch.arange(side, device=embedded.device)
            return (positions >= side // 2 - half) & (positions < side // 2 + half)

        rows, columns = inside(height, rates[:, 0]), inside(width, rates[:, 1])
        return (rows[:, None, :, None] & columns[:, None, None, :]).to(embedded.dtype)

    def split_frequencies(self, image):
        """``(high, low)``, each ``(B, dim, h, w)``: magnitudes of the inverse transforms of the spectrum of the
        image embedded by ``conv1``, outside and inside the low-frequency mask.

        The transforms run in float32 whatever autocast makes of ``conv1``: cuFFT has no bf16, and
        its fp16 only takes power-of-two sizes (the bands are float32)."""
        embedded = self.conv1(image)
        mask = self.low_frequency_mask(embedded)
        with torch.autocast(embedded.device.type, enabled=False):
            embedded = embedded.float()
            spectrum = torch.fft.fftshift(torch.fft.fft2(embedded, norm='forward'), dim=(-2, -1))

            def band(selection):
                return torch.fft.ifft2(torch.fft.ifftshift(spectrum * selection, dim=(-2, -1)), norm='forward').abs()

            return band(1 - mask.float()), band(mask.float())


@ARCH_REGISTRY.register()
class AdaIR(RestormerBackbone):
    """AdaIR: Restormer's UNet whose decoder is modulated by the input's frequency bands at three levels.

    Restormer's modules and names (see :class:`~basicsr_snn.archs.restormer_arch.Restormer`) plus
    ``fre1`` (after ``latent``), ``fre2`` (after ``decoder_level3``) and ``fre3`` (after
    ``decoder_level2``), each a :class:`FreModule` fed the (padded) input image. The input is
    padded (reflect) to a multiple of 8 and the output cropped back, so any size works. For an
    input ``(B, inp_channels, H, W)``, ``H8, W8`` its size rounded up to multiples of 8 and
    ``d = dim``:

    ===============  ==========================  ===========================================
    module           output                      role
    ===============  ==========================  ===========================================
    latent           (B, 8d, H8/8, W8/8)         Restormer's bottleneck
    fre1             (B, 8d, H8/8, W8/8)         modulated latent; then up4_3
    decoder_level3   (B, 4d, H8/4, W8/4)         hint point
    fre2             (B, 4d, H8/4, W8/4)         modulated level-3 features
    decoder_level2   (B, 2d, H8/2, W8/2)         hint point
    fre3             (B, 2d, H8/2, W8/2)         modulated level-2 features
    decoder_level1   (B, 2d, H8, W8)             hint point
    refinement       (B, 2d, H8, W8)             hint point
    output           (B, out_channels, H8, W8)   3x3 conv; + input (global residual)
    ===============  ==========================  ===========================================

    Hint points: ``decoder_level3``, ``decoder_level2``, ``decoder_level1`` and ``refinement``
    (Restormer's); the modulated features are at ``fre1/2/3``.

    The authors' configuration (the defaults; ``ADAIR_PRESETS['paper']``) has 28,784,824
    parameters in 587 state-dict entries for color. ``'small'``: dim 8, one block per level.

    Args:
        inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
        ffn_expansion_factor, bias, LayerNorm_type: Restormer's (same defaults). ``heads[2]`` is
            also the heads of the frequency blocks' cross attentions; ``dim`` must be at least 8
            (``fre3``'s channel gate reduces its 2d channels 16-fold).
        decoder (bool): the frequency blocks; without them the network is Restormer's UNet.
            Default: True.
        unused_release_layers (bool): also build ``conv`` and ``score_gen`` of every frequency
            block, which the release defines but never calls, so that its checkpoints load
            strictly; they cost no compute. Default: True.
    """

    def __init__(
            self,
            inp_channels: int = 3,
            out_channels: int = 3,
            dim: int = 48,
            num_blocks: Sequence[int] = (4, 6, 6, 8),
            num_refinement_blocks: int = 4,
            heads: Sequence[int] = (1, 2, 4, 8),
            ffn_expansion_factor: float = 2.66,
            bias: bool = False,
            LayerNorm_type: str = 'WithBias',  # noqa: N803 (the authors' option name)
            decoder: bool = True,
            unused_release_layers: bool = True):
        check_bool('decoder', decoder)
        check_bool('unused_release_layers', unused_release_layers)
        if decoder and dim < 8:
            raise ValueError(f'dim must be >= 8 with decoder: true (fre3\'s channel gate reduces 2*dim channels '
                             f'16-fold), got {dim!r}')
        widths = (8 * dim, 4 * dim, 2 * dim)  # of fre1, fre2, fre3
        for index, width in enumerate(widths, start=1):
            if decoder and len(heads) == 4 and width % heads[2]:
                raise ValueError(f'heads[2]={heads[2]} must divide the width {width} of fre{index}')
        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type)
        self.decoder = decoder
        if decoder:
            for index, width in enumerate(widths, start=1):
                setattr(self, f'fre{index}', FreModule(width, heads[2], bias, inp_channels, unused_release_layers))

    def modulate(self, stage, features, image):
        if not self.decoder:
            return features
        return getattr(self, f'fre{stage + 1}')(image, features)

"""Restormer (Zamir et al., CVPR 2022, arXiv 2111.09881), the ANN teacher of H-KD.

Written from the paper's description. Option names and parameter names follow the authors'
release, so their option files and checkpoints (``params`` key) are meant to load unchanged.
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_snn.archs.arch_utils import pad_to_multiple
from basicsr_snn.utils.checks import check_choice

RESTORMER_PRESETS = {
    # the paper's configuration: 26.1M parameters
    'paper': dict(dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4, heads=(1, 2, 4, 8)),
    # a few seconds per step on two CPU cores (batch 8 of 64x64): for demos and tests
    'small': dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 4, 8)),
}
LAYER_NORM_TYPES = ('WithBias', 'BiasFree')


class _ScaleOnlyNorm(nn.Module):
    """Divides by the standard deviation over the last dim, without centring, then scales.

    Computed in float32, as autocast runs ``nn.LayerNorm`` (the ``'WithBias'`` norm): under fp16 the
    variance of features beyond about 256 would overflow to inf and the output collapse to 0.
    """

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * self.weight


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of each pixel of a ``(B, C, H, W)`` map.

    ``'WithBias'`` is the standard layer norm; ``'BiasFree'`` neither centres nor shifts.
    """

    def __init__(self, channels, layer_norm_type):
        super().__init__()
        self.body = nn.LayerNorm(channels) if layer_norm_type == 'WithBias' else _ScaleOnlyNorm(channels)

    def forward(self, x):
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def channel_attention(query, key, value, temperature):
    """Transposed (channel) attention of MDTA, shared by the archs built on Restormer.

    ``query``, ``key``, ``value``: ``(B, C, H, W)``; ``temperature``: ``(heads, 1, 1)``. Per head,
    the ``C/heads x C/heads`` map is the softmax of the cosine similarities of the query and key
    channels (L2-normalised over pixels) times the head's temperature; it mixes the value
    channels. Returns ``(B, C, H, W)``.

    The normalisation's floor (``F.normalize``'s 1e-12) is raised to the smallest normal number of an
    fp16 input, where 1e-12 is 0 and an all-zero channel (AdaIR's empty low band) would give 0 / 0.
    """
    batch, channels, height, width = query.shape
    num_heads = temperature.shape[0]
    query, key, value = (tensor.reshape(batch, num_heads, channels // num_heads, height * width)
                         for tensor in (query, key, value))
    eps = max(1e-12, torch.finfo(query.dtype).tiny)
    attention = (F.normalize(query, dim=-1, eps=eps) @ F.normalize(key, dim=-1, eps=eps).transpose(-2, -1)
                 * temperature).softmax(-1)
    return (attention @ value).reshape(batch, channels, height, width)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention: attention across channels, linear in pixels.

    Queries, keys and values come from a 1x1 conv followed by a 3x3 depth-wise conv. Per head,
    the C/heads x C/heads attention map is the softmax of the cosine similarities of the query
    and key channels (L2-normalised over pixels) times a learned temperature.
    """

    def __init__(self, dim, num_heads, bias):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x):
        query, key, value = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        return self.project_out(channel_attention(query, key, value, self.temperature))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: two 1x1 + 3x3 depth-wise branches, GELU(one) * other."""

    def __init__(self, dim, expansion_factor, bias):
        super().__init__()
        hidden = int(dim * expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        gate, content = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * content)


class TransformerBlock(nn.Module):
    """``x + MDTA(LN(x))``, then ``+ GDFN(LN(.))``; shape preserved ``(B, dim, H, W)``."""

    def __init__(self, dim, num_heads, ffn_expansion_factor, bias, layer_norm_type):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, layer_norm_type)
        self.attn = MDTA(dim, num_heads, bias)
        self.norm2 = ChannelLayerNorm(dim, layer_norm_type)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: a 3x3 conv."""

    def __init__(self, in_channels, dim, bias):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1, bias=bias)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    """3x3 conv halving the channels, then pixel-unshuffle: ``(B, C, H, W) -> (B, 2C, H/2, W/2)``."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    """3x3 conv doubling the channels, then pixel-shuffle: ``(B, C, H, W) -> (B, C/2, 2H, 2W)``."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


class RestormerBackbone(nn.Module):
    """The 4-level transformer UNet of Restormer, shared by the archs built on it (PromptIR, AdaIR).

    It builds Restormer's modules under the release's names (see :class:`Restormer`) and runs
    them with three points where a subclass acts on the decoder's features: :meth:`modulate`
    ``stage`` 0 after ``latent``, 1 after ``decoder_level3``, 2 after ``decoder_level2`` (the
    identity here). The input is padded (reflect) to a multiple of 8 and the output cropped back.

    Args: those of :class:`Restormer` except ``dual_pixel_task``, plus
        latent_out_width (int | None): channels of the features entering ``up4_3`` (what
            ``modulate(0, ...)`` returns). Default: None = ``8 * dim``, the latent's.
        global_residual (bool): the output adds the input, so ``out_channels`` must equal
            ``inp_channels``. Default: True.
    """

    size_multiple = 8

    def __init__(self, inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                 ffn_expansion_factor, bias, LayerNorm_type, latent_out_width=None,  # noqa: N803
                 global_residual=True):
        super().__init__()
        if global_residual and out_channels != inp_channels:
            raise ValueError(f'out_channels must equal inp_channels ({inp_channels}) for the global residual, '
                             f'got {out_channels!r}')
        check_choice('LayerNorm_type', LayerNorm_type, LAYER_NORM_TYPES)
        for key, values in (('num_blocks', num_blocks), ('heads', heads)):
            if len(values) != 4:
                raise ValueError(f'{key} must list 4 values (levels 1-4), got {values!r}')
        if dim % 2:
            raise ValueError(f'dim must be even (down-sampling halves it before unshuffling), got {dim!r}')
        widths = [dim * 2**level for level in range(4)]
        for level, (width, num_heads) in enumerate(zip(widths, heads)):
            if width % num_heads:
                raise ValueError(f'heads[{level}]={num_heads} must divide the level width {width}')
        latent_out_width = latent_out_width or widths[3]

        def level(width, num_heads, count):
            return nn.Sequential(
                *[TransformerBlock(width, num_heads, ffn_expansion_factor, bias, LayerNorm_type) for _ in range(count)])

        # the release's patch embedding has no bias, whatever ``bias`` says
        self.patch_embed = PatchEmbed(inp_channels, dim, bias=False)
        self.encoder_level1 = level(widths[0], heads[0], num_blocks[0])
        self.down1_2 = Downsample(widths[0])
        self.encoder_level2 = level(widths[1], heads[1], num_blocks[1])
        self.down2_3 = Downsample(widths[1])
        self.encoder_level3 = level(widths[2], heads[2], num_blocks[2])
        self.down3_4 = Downsample(widths[2])
        self.latent = level(widths[3], heads[3], num_blocks[3])
        self.up4_3 = Upsample(latent_out_width)
        self.reduce_chan_level3 = nn.Conv2d(latent_out_width // 2 + widths[2], widths[2], 1, bias=bias)
        self.decoder_level3 = level(widths[2], heads[2], num_blocks[2])
        self.up3_2 = Upsample(widths[2])
        self.reduce_chan_level2 = nn.Conv2d(widths[2], widths[1], 1, bias=bias)
        self.decoder_level2 = level(widths[1], heads[1], num_blocks[1])
        self.up2_1 = Upsample(widths[1])
        self.decoder_level1 = level(widths[1], heads[0], num_blocks[0])
        self.refinement = level(widths[1], heads[0], num_refinement_blocks)
        self.output = nn.Conv2d(widths[1], out_channels, 3, padding=1, bias=bias)

    def modulate(self, stage: int, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Act on the decoder's ``features`` at ``stage`` 0, 1 or 2, given the padded input ``image``."""
        return features

    def head(self, refined: torch.Tensor, embedded: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The restored image from the refined features: ``output`` conv plus the input (global residual)."""
        return self.output(refined) + image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, inp_channels, H, W)`` -> ``(B, out_channels, H, W)``."""
        height, width = x.shape[-2:]
        image = pad_to_multiple(x, self.size_multiple)
        embedded = self.patch_embed(image)
        enc1 = self.encoder_level1(embedded)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.modulate(0, self.latent(self.down3_4(enc3)), image)
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)))
        dec3 = self.modulate(1, dec3, image)
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec2 = self.modulate(2, dec2, image)
        refined = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1)))
        return self.head(refined, embedded, image)[..., :height, :width]


@ARCH_REGISTRY.register()
class Restormer(RestormerBackbone):
    """Restormer: a 4-level transformer UNet with channel attention (MDTA) and gated FFNs (GDFN).

    The input is padded (reflect) to a multiple of 8 and the output cropped back, so any size
    works. Module names, for an input ``(B, inp_channels, H, W)`` with ``H8, W8`` its size rounded
    up to multiples of 8 and ``d = dim``; every output is ``(B, C, h, w)``:

    ======================  ===========================  ======================================
    module                  output                       role
    ======================  ===========================  ======================================
    patch_embed             (B, d, H8, W8)               3x3 conv
    encoder_level1          (B, d, H8, W8)               num_blocks[0] transformer blocks
    down1_2                 (B, 2d, H8/2, W8/2)          conv + pixel-unshuffle
    encoder_level2          (B, 2d, H8/2, W8/2)          num_blocks[1] blocks
    down2_3, encoder_level3 (B, 4d, H8/4, W8/4)          num_blocks[2] blocks
    down3_4, latent         (B, 8d, H8/8, W8/8)          num_blocks[3] blocks (bottleneck)
    up4_3                   (B, 4d, H8/4, W8/4)          conv + pixel-shuffle; concat encoder 3
    reduce_chan_level3      (B, 4d, H8/4, W8/4)          1x1 conv 8d -> 4d
    decoder_level3          (B, 4d, H8/4, W8/4)          num_blocks[2] blocks
    up3_2                   (B, 2d, H8/2, W8/2)          concat encoder 2
    reduce_chan_level2      (B, 2d, H8/2, W8/2)          1x1 conv 4d -> 2d
    decoder_level2          (B, 2d, H8/2, W8/2)          num_blocks[1] blocks
    up2_1                   (B, d, H8, W8)               concat encoder 1 (no reduction)
    decoder_level1          (B, 2d, H8, W8)              num_blocks[0] blocks at width 2d
    refinement              (B, 2d, H8, W8)              num_refinement_blocks blocks
    output                  (B, out_channels, H8, W8)    3x3 conv; + input (global residual)
    ======================  ===========================  ======================================

    The decoder features (``decoder_level3/2/1``, ``refinement``) are the paper's hint points.

    Presets (``RESTORMER_PRESETS``): ``'paper'`` = the defaults (26,126,644 parameters for
    color, 26,124,052 for gray); ``'small'``: dim 8, one block per level, one refinement block
    (208,225 parameters for color, 207,793 for gray), for CPU demos and tests.

    Args:
        inp_channels (int): input channels. Default: 3.
        out_channels (int): output channels. Default: 3.
        dim (int): width of level 1. Default: 48.
        num_blocks (list[int]): transformer blocks at levels 1-4. Default: (4, 6, 6, 8).
        num_refinement_blocks (int): blocks after decoder level 1. Default: 4.
        heads (list[int]): attention heads at levels 1-4; each must divide the level's width.
            Default: (1, 2, 4, 8).
        ffn_expansion_factor (float): GDFN hidden width / block width. Default: 2.66.
        bias (bool): biases in the convolutions of the blocks (the patch embedding has none, as
            in the authors' release). Default: False.
        LayerNorm_type (str): ``'WithBias'`` or ``'BiasFree'``. Default: ``'WithBias'``.
        dual_pixel_task (bool): dual-pixel defocus deblurring (6 input channels): the patch
            embedding is added to the refined features through a 1x1 conv, and the output has
            no global residual. Default: False.
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
            dual_pixel_task: bool = False):
        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, global_residual=not dual_pixel_task)
        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, 2 * dim, 1, bias=bias)

    def head(self, refined, embedded, image):
        if self.dual_pixel_task:
            return self.output(refined + self.skip_conv(embedded))
        return super().head(refined, embedded, image)

"""PromptIR (Potlapalli et al., NeurIPS 2023, arXiv 2306.13090), an all-in-one teacher of the paper.

Written from the paper: Restormer's UNet (:class:`~basicsr_snn.archs.restormer_arch.RestormerBackbone`)
with a prompt-generation block and a prompt-interaction block at three points of the decoder.
Option, module and parameter names follow the authors' release (``net/model.py`` of
``va1shn9v/PromptIR``), so that their checkpoints load with ``strict=True`` (through
``path.strip_prefix_t: net.``, see docs/options.md).
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_snn.archs.restormer_arch import RestormerBackbone, TransformerBlock
from basicsr_snn.utils.checks import check_bool

PROMPTIR_PRESETS = {
    # the authors' configuration: 35.6M parameters
    'paper': dict(dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4, heads=(1, 2, 4, 8)),
    # for CPU demos and tests: Restormer's small preset with small prompts
    'small': dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 4, 8),
                  prompt_dims=(8, 16, 32), prompt_sizes=(16, 8, 4), unused_release_layers=False),
}


class PromptGenBlock(nn.Module):
    """Prompt generation: a softmax-weighted sum of ``prompt_len`` learned prompts, resized, then a 3x3 conv.

    The weights are a linear map of the input's global average: ``(B, lin_dim, H, W)`` ->
    ``(B, prompt_dim, H, W)``.
    """

    def __init__(self, prompt_dim, prompt_len, prompt_size, lin_dim):
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x):
        weights = self.linear_layer(x.mean(dim=(-2, -1))).softmax(dim=1)
        prompt = torch.einsum('bl,lchw->bchw', weights, self.prompt_param[0])
        return self.conv3x3(F.interpolate(prompt, x.shape[-2:], mode='bilinear', align_corners=False))


@ARCH_REGISTRY.register()
class PromptIR(RestormerBackbone):
    """PromptIR: Restormer's UNet whose decoder is prompted at three levels.

    At each of three points a prompt-generation block (``promptN``) makes a prompt from the
    features, a prompt-interaction transformer block (``noise_levelN``) mixes the features with
    it, and a 1x1 conv (``reduce_noise_levelN``) brings the channels back. The encoder, the
    decoder levels, the refinement and the output are Restormer's (same names; see
    :class:`~basicsr_snn.archs.restormer_arch.Restormer`). The input is padded (reflect) to a
    multiple of 8 and the output cropped back, so any size works. For an input
    ``(B, inp_channels, H, W)``, ``H8, W8`` its size rounded up to multiples of 8, ``d = dim`` and
    ``p1, p2, p3 = prompt_dims``:

    =====================  ==========================  =====================================
    module                 output                      role
    =====================  ==========================  =====================================
    latent                 (B, 8d, H8/8, W8/8)         Restormer's bottleneck
    prompt3                (B, p3, H8/8, W8/8)         prompt from the latent
    noise_level3           (B, 8d+p3, H8/8, W8/8)      transformer block on [latent, prompt]
    reduce_noise_level3    (B, 4d, H8/8, W8/8)         1x1 conv; then up4_3 (B, 2d, H8/4, W8/4)
    decoder_level3         (B, 4d, H8/4, W8/4)         hint point
    prompt2, noise_level2  (B, 4d+p2, H8/4, W8/4)
    reduce_noise_level2    (B, 4d, H8/4, W8/4)         prompted level-3 features
    decoder_level2         (B, 2d, H8/2, W8/2)         hint point
    prompt1, noise_level1  (B, 2d+p1, H8/2, W8/2)
    reduce_noise_level1    (B, 2d, H8/2, W8/2)         prompted level-2 features
    decoder_level1         (B, 2d, H8, W8)             hint point
    refinement             (B, 2d, H8, W8)             hint point
    output                 (B, out_channels, H8, W8)   3x3 conv; + input (global residual)
    =====================  ==========================  =====================================

    Hint points: ``decoder_level3``, ``decoder_level2``, ``decoder_level1`` and ``refinement``
    (Restormer's, so a SpikerIR student takes the same hints from either teacher); the prompted
    features are at ``reduce_noise_level3/2/1``.

    The authors' configuration (the defaults; ``PROMPTIR_PRESETS['paper']``) has 35,592,263
    parameters in 548 state-dict entries for color. ``'small'``: dim 8, one block per level,
    prompts of (8, 16, 32) channels, for CPU demos and tests.

    Args:
        inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
        ffn_expansion_factor, bias, LayerNorm_type: Restormer's (same defaults). ``heads[2]`` is
            also the heads of the three ``noise_level`` blocks and must divide their widths.
        decoder (bool): the prompt blocks; must be true: the release's decoder is built for the
            prompted latent (4d channels into ``up4_3``), so it has no working prompt-free
            variant (that network is ``Restormer``). Default: True.
        prompt_dims (list[int]): channels of the prompts of ``prompt1``, ``prompt2``, ``prompt3``.
            Default: (64, 128, 320), the release's.
        prompt_sizes (list[int]): side of the learned prompts of ``prompt1/2/3``. Default:
            (64, 32, 16), the release's.
        prompt_len (int): learned prompts per block. Default: 5.
        unused_release_layers (bool): also build the six 1x1 convs that the release defines but
            its forward never calls (``chnl_reduce1/2/3``, ``reduce_noise_channel_1/2/3``), with
            the release's widths, so that its checkpoints load strictly; they cost no compute.
            They are frozen (``requires_grad`` off): no gradient would ever reach them, and DDP
            (``find_unused_parameters: false``) must not wait for one. Default: True.
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
            prompt_dims: Sequence[int] = (64, 128, 320),
            prompt_sizes: Sequence[int] = (64, 32, 16),
            prompt_len: int = 5,
            unused_release_layers: bool = True):
        if not check_bool('decoder', decoder):
            raise ValueError('decoder must be true for PromptIR: the release builds its decoder for the prompted '
                             'latent, so it has no prompt-free variant (use type: Restormer for that network)')
        check_bool('unused_release_layers', unused_release_layers)
        for key, values in (('prompt_dims', prompt_dims), ('prompt_sizes', prompt_sizes)):
            if len(values) != 3 or any(value < 1 for value in values):
                raise ValueError(f'{key} must list 3 positive values (prompt1, prompt2, prompt3), got {values!r}')
        # (block suffix, width of the features it prompts, width it returns), in decoder order
        interactions = ((3, 8 * dim, 4 * dim), (2, 4 * dim, 4 * dim), (1, 2 * dim, 2 * dim))
        for suffix, width, _ in interactions:
            mixed = width + prompt_dims[suffix - 1]
            if len(heads) == 4 and mixed % heads[2]:
                raise ValueError(f'heads[2]={heads[2]} must divide the width {mixed} of noise_level{suffix} '
                                 f'({width} feature + {prompt_dims[suffix - 1]} prompt channels)')
        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, latent_out_width=4 * dim)
        for suffix, width, out_width in interactions:
            mixed = width + prompt_dims[suffix - 1]
            setattr(self, f'prompt{suffix}', PromptGenBlock(prompt_dims[suffix - 1], prompt_len,
                                                            prompt_sizes[suffix - 1], width))
            setattr(self, f'noise_level{suffix}',
                    TransformerBlock(mixed, heads[2], ffn_expansion_factor, bias, LayerNorm_type))
            setattr(self, f'reduce_noise_level{suffix}', nn.Conv2d(mixed, out_width, 1, bias=bias))
        self.interaction_suffixes = [suffix for suffix, _, _ in interactions]
        if unused_release_layers:
            for index, (prompt_width, reduced) in enumerate(((64, 64), (128, 128), (320, 256)), start=1):
                setattr(self, f'chnl_reduce{index}', nn.Conv2d(prompt_width, reduced, 1, bias=bias))
                width = dim * 2**(index - 1)
                setattr(self, f'reduce_noise_channel_{index}',
                        nn.Conv2d(width + reduced, width, 1, bias=bias).requires_grad_(False))
                getattr(self, f'chnl_reduce{index}').requires_grad_(False)

    def modulate(self, stage, features, image):
        suffix = self.interaction_suffixes[stage]
        prompt = getattr(self, f'prompt{suffix}')(features)
        mixed = getattr(self, f'noise_level{suffix}')(torch.cat([features, prompt], 1))
        return getattr(self, f'reduce_noise_level{suffix}')(mixed)

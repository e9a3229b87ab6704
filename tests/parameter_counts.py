"""Parameter counts of SpikerIR and Restormer, layer by layer from their architectures (not from a run).

Each term names the layer it counts; convolutions without bias count ``k*k * in * out``, a depth-wise one
``k*k * channels``, a threshold-dependent batch norm (and a layer norm with bias) 2 per channel.
"""


def _spikerir_attention(T, channels):
    """spikingjelly's MultiDimensionalAttention as SpikerIR builds it (reduction_t 1, kernel 3)."""
    reduction_c = max(1, min(4, channels // 2))
    temporal = 2 * T * T                                  # two 1x1x1 convs T -> T
    channel = 2 * channels * (channels // reduction_c)    # C -> C/r -> C
    spatial = 2 * 3 * 3                                   # 3x3 conv of the (mean, max) maps to one gate
    return temporal + channel + spatial


def _spikerir_block(T, width, attention, shortcut):
    count = 2 * (9 * width * width + 2 * width)           # two 3x3 convs, each with its tdBN
    if attention:
        count += _spikerir_attention(T, width)
    if shortcut == 'spike':
        count += width * width + 2 * width                # 1x1 conv + tdBN of the input spikes
    return count


def spikerir_params(channels=1, dim=5, T=1, attention=True, shortcut='membrane'):
    """SpikerIR (its I-LIF and LIF neurons have no parameter) with one residual block per level, as every preset:
    embed, 7 levels, 3 downs, 3 ups, head."""
    widths = [dim * 2**level for level in range(4)]
    embed = 9 * channels * dim + 2 * dim                  # 3x3 conv + tdBN
    levels = sum(_spikerir_block(T, width, attention, shortcut) for width in widths + widths[:3])
    downs = sum(9 * w_in * w_out + 2 * w_out for w_in, w_out in zip(widths[:3], widths[1:]))  # stride-2 3x3 + tdBN
    ups = sum(4 * w_in * w_out + 2 * w_out for w_in, w_out in zip(widths[1:], widths[:3]))    # 2x2 transposed + tdBN
    head = 9 * dim * channels + channels                  # 3x3 conv with bias
    return embed + levels + downs + ups + head


def _restormer_block(width, heads, expansion, layer_norm_type):
    norms = 2 * (2 * width if layer_norm_type == 'WithBias' else width)
    attention = heads + 3 * width * width + 9 * 3 * width + width * width  # temperature, qkv, dw 3x3, project_out
    hidden = int(width * expansion)
    feed_forward = width * 2 * hidden + 9 * 2 * hidden + hidden * width    # project_in, dw 3x3, project_out
    return norms + attention + feed_forward


def restormer_params(channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4, heads=(1, 2, 4, 8),
                     ffn_expansion_factor=2.66, layer_norm_type='WithBias'):
    """Restormer without biases in its convolutions (the authors' default ``bias: false``)."""
    widths = [dim * 2**level for level in range(4)]

    def blocks(width, level_heads, count):
        return count * _restormer_block(width, level_heads, ffn_expansion_factor, layer_norm_type)

    encoder = sum(blocks(w, h, n) for w, h, n in zip(widths, heads, num_blocks))
    decoder = (blocks(widths[2], heads[2], num_blocks[2]) + blocks(widths[1], heads[1], num_blocks[1])
               + blocks(widths[1], heads[0], num_blocks[0]) + blocks(widths[1], heads[0], num_refinement_blocks))
    downs = sum(9 * w * (w // 2) for w in widths[:3])                     # 3x3 conv to half the channels
    ups = sum(9 * w * 2 * w for w in widths[1:])                          # 3x3 conv to twice the channels
    reduce_channels = widths[3] * widths[2] + widths[2] * widths[1]       # 1x1 convs after the concatenations
    return (9 * channels * dim + encoder + downs + ups + reduce_channels + decoder
            + 9 * widths[1] * channels)                                   # patch_embed ... output conv

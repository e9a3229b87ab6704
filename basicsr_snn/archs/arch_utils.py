"""Padding to a size multiple, shared by the archs."""
import torch.nn.functional as F


def pad_to_multiple(x, multiple):
    """Pad the last two dims of ``x`` at the bottom/right up to a multiple of ``multiple``.

    Reflect padding where the image is large enough for it, replicate padding otherwise
    (reflection needs the pad to be smaller than the side). Crop back with ``[..., :h, :w]``.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

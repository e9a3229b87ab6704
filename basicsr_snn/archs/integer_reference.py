"""Integer inference of a fake-quantized network: batch norms folded, int8 weights, int32 accumulators.

:func:`integer_layers` folds every batch norm that follows a conv (eval mode, running statistics; the network's
``conv_norm_pairs()``) into it and quantizes the folded weights on the network's own per-channel grid: since a
symmetric per-channel quantizer commutes with a per-channel scale, the integers are those of the fake-quantized
training weights (times the sign of the batch norm's scale) and only the scale and the bias move.

:func:`integer_forward` runs the network with every quantized conv / linear layer replaced by its integer
computation: the layer's input as integers (spike counts as they are; a fake-quantized analog input as
``q - zero_point`` of its quantizer), convolved with the int8 weights and accumulated exactly (float64 holds
every partial sum of integers below 2^53 exactly; the sums are checked to fit int32), then rescaled per output
channel and offset by the int32 bias. Neurons, attention gates and additions run as in the network. The output
equals the fake-quantized network's within float tolerance (compare both in float64, where rounding inside a
neuron cannot flip a count).
"""
import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_snn.archs.quantization import QUANTIZED_LAYER_TYPES, output_channel_axis, trained_weight, weight_quantizer
from basicsr_snn.utils.hooks import evaluating

INT32_LIMIT = 2**31 - 1
MAX_BIAS_SHIFT = 16


@dataclass
class IntegerLayer:
    """One conv / linear layer in integers: ``out = (acc * 2^shift + bias) * scale / 2^shift`` per channel, where
    ``acc`` is the int32 sum of integer inputs times ``weight``; ``scale = input_scale x weight_scale``."""
    weight: torch.Tensor  # int8, the layer's weight shape
    weight_scale: torch.Tensor  # float32, per output channel
    bias: torch.Tensor  # int32 per output channel, in units of scale / 2^bias_shift
    bias_shift: int
    input_scale: float  # 1 for spike counts
    input_zero_point: int
    bits: int
    folded_norm: str | None

    def scale(self) -> torch.Tensor:
        return self.input_scale * self.weight_scale.double()

    def to_dict(self) -> dict:
        return {'weight': self.weight, 'weight_scale': self.weight_scale, 'bias_int32': self.bias,
                'bias_shift': self.bias_shift, 'input_scale': self.input_scale,
                'input_zero_point': self.input_zero_point, 'bits': self.bits, 'folded_norm': self.folded_norm}


def _norm_affine(norm: nn.Module, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset) per channel of a batch norm in eval mode, in float64: ``norm(x) = scale * x + offset``."""
    probe = copy.deepcopy(norm).double().eval()
    points = torch.stack([torch.zeros(channels), torch.ones(channels)]).double().view(2, 1, 1, channels, 1, 1)
    zero, one = (probe(point).flatten() for point in points)
    return one - zero, zero


def _channel_shape(layer, ndim):
    axis = output_channel_axis(layer)
    return [-1 if dim == axis else 1 for dim in range(ndim)]


def _bias_shift(bias_units: torch.Tensor) -> int:
    largest = float(bias_units.abs().max()) if bias_units.numel() else 0.
    if largest == 0:
        return MAX_BIAS_SHIFT
    return max(0, min(MAX_BIAS_SHIFT, math.floor(math.log2(INT32_LIMIT / (largest + 1)))))


def integer_layers(net: nn.Module) -> dict[str, IntegerLayer]:
    """Every quantized conv / linear layer of ``net`` (eval-mode batch norms folded) by module path.

    Raises ValueError for a network without quantized weights, or with a layer whose input is analog and not
    fake-quantized (it could not run on integers)."""
    names = {module: name for name, module in net.named_modules()}
    norms = dict(net.conv_norm_pairs()) if hasattr(net, 'conv_norm_pairs') else {}
    result = {}
    with evaluating(net), torch.no_grad():
        for layer, name in names.items():
            if not isinstance(layer, QUANTIZED_LAYER_TYPES):
                continue
            quantizer = weight_quantizer(layer)
            if quantizer is None:
                raise ValueError(f'{name} has float weights: export needs a network built with weight_bits 8 or 4')
            weight = trained_weight(layer).double()
            channels = weight.shape[quantizer.axis]
            gain, offset = torch.ones(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64)
            if layer in norms:
                gain, offset = _norm_affine(norms[layer], channels)
            if getattr(layer, 'bias', None) is not None:
                offset = offset + gain * layer.bias.double()
            folded = weight * gain.view(_channel_shape(layer, weight.dim()))
            integers, weight_scale = quantizer.integers(folded.float())
            quant = getattr(layer, 'input_quant', None)
            input_scale, zero_point = (1., 0) if quant is None else (float(quant.scale), int(quant.zero_point))
            bias_units = offset / (input_scale * weight_scale.double())
            shift = _bias_shift(bias_units)
            bias = torch.round(bias_units * 2**shift).to(torch.int32)
            folded_norm = names[norms[layer]] if layer in norms else None
            result[name] = IntegerLayer(integers, weight_scale.float(), bias, shift, input_scale, zero_point,
                                        quantizer.bits, folded_norm)
    return result


def _apply(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``layer``'s linear operation on ``x`` with ``weight``, no bias; multi-step ``(T, B, ...)`` inputs folded."""
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight)
    multi_step = x.dim() == weight.dim() + 1
    flat = x.flatten(0, 1) if multi_step else x
    if layer.transposed:
        out = F.conv_transpose2d(flat, weight, None, layer.stride, layer.padding, layer.output_padding, layer.groups,
                                 layer.dilation)
    else:
        out = layer._conv_forward(flat, weight, None)
    return out.view(*x.shape[:2], *out.shape[1:]) if multi_step else out


def integer_input(name: str, layer: IntegerLayer, x: torch.Tensor) -> torch.Tensor:
    """The integers a layer reads: ``round(x / input_scale)`` (``q - zero_point``; counts: the counts)."""
    integers = torch.round(x.double() / layer.input_scale)
    if not torch.allclose(integers * layer.input_scale, x.double(), rtol=1e-6, atol=1e-6 * layer.input_scale):
        raise ValueError(f'{name} reads values that are not integers (an analog input without act_bits); export '
                         'needs act_bits 8')
    return integers


def integer_layer_output(name: str, module: nn.Module, layer: IntegerLayer, x: torch.Tensor) -> torch.Tensor:
    """The integer computation of one layer (module docstring), returned in ``x``'s dtype."""
    accumulated = _apply(module, integer_input(name, layer, x), layer.weight.double())
    if accumulated.abs().max() > INT32_LIMIT:
        raise ValueError(f'{name}: an accumulator exceeds int32')
    accumulated = accumulated.to(torch.int32)
    # outputs are (B, C, ...), (T, B, C, ...) for a multi-step layer, (..., C) for a linear one
    channel_dim = (accumulated.dim() - 1 if isinstance(module, nn.Linear)
                   else 1 + accumulated.dim() - layer.weight.dim())
    shape = [-1 if dim == channel_dim else 1 for dim in range(accumulated.dim())]
    shifted = accumulated.long() * 2**layer.bias_shift + layer.bias.long().view(shape)
    return (shifted.double() * (layer.scale() / 2**layer.bias_shift).view(shape)).to(x.dtype)


def integer_forward(net: nn.Module, layers: dict[str, IntegerLayer], images: torch.Tensor) -> torch.Tensor:
    """``net(images)`` with every layer of ``layers`` computed in integers and its folded batch norm skipped."""
    modules = dict(net.named_modules())
    handles = []

    def replace_output(name):
        return lambda module, inputs, _output: integer_layer_output(name, module, layers[name], inputs[0])

    for name, layer in layers.items():
        handles.append(modules[name].register_forward_hook(replace_output(name)))
        if layer.folded_norm is not None:
            handles.append(modules[layer.folded_norm].register_forward_hook(lambda _m, inputs, _o: inputs[0]))
    try:
        with evaluating(net), torch.no_grad():
            return net(images)
    finally:
        for handle in handles:
            handle.remove()

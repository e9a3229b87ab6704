"""Quantization-aware training of conv / linear layers: fake-quantized weights and inputs, torch's own ops.

* Weights (``weight_bits`` 8 or 4): per-output-channel symmetric, integers in ``[-(2^(b-1) - 1), 2^(b-1) - 1]``
  (-127..127, -7..7), the scale of channel ``c`` ``max |W[c]| / (2^(b-1) - 1)`` from torch's
  ``PerChannelMinMaxObserver`` on the current weights at every forward (no lag behind the optimiser), applied with
  ``torch.fake_quantize_per_channel_affine``, whose gradient is straight-through. A
  ``torch.nn.utils.parametrize`` parametrization of the layer's ``weight``: ``layer.weight`` is the fake-quantized
  weight, the trained one is ``layer.parametrizations.weight.original``.
* Inputs (``act_bits`` 8): per tensor, unsigned affine 0..255, torch's ``FakeQuantize`` with a
  ``MovingAverageMinMaxObserver`` calibrated while training (and on the first forward of a network that never
  observed), frozen in eval mode, as ``layer.input_quant``, applied by a forward pre-hook.

Since a symmetric per-channel quantizer commutes with a per-channel scale, a batch norm that follows the layer
folds into it before or after quantizing: the integer grid is the same, only the scale and the bias move
(``scripts/export_int8.py``).

Checkpoints: the observers' buffers are in the state dict. :func:`map_weight_keys` lets a network load
checkpoints of either kind (``<layer>.weight`` of an fp32 network, ``<layer>.parametrizations.weight.original`` of
a quantized one); the buffers an fp32 checkpoint lacks are recalibrated at the first training forward, so such a
checkpoint loads with ``strict_load_g: false``.
"""
import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, PerChannelMinMaxObserver
from torch.nn.utils import parametrize

from basicsr_snn.utils.checkpoint import match_parametrized_keys

WEIGHT_BITS = (None, 8, 4)
ACT_BITS = (None, 8)
QUANTIZED_LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


def check_bits(key: str, value, choices: tuple) -> int | None:
    """``value`` must be None or an int (not a bool, not a string) among ``choices``."""
    if not (value is None or (type(value) is int and value in choices)):
        raise ValueError(f'{key} must be one of {choices}, got {value!r}')
    return value


def output_channel_axis(layer: nn.Module) -> int:
    """The weight axis of output channels: 1 for transposed convolutions, 0 otherwise."""
    return 1 if getattr(layer, 'transposed', False) else 0


class WeightFakeQuant(nn.Module):
    """Parametrization ``W -> s * clamp(round(W / s), -q, q)``, ``q = 2^(bits-1) - 1``, ``s`` per output channel."""

    def __init__(self, bits: int, axis: int = 0):
        super().__init__()
        self.bits, self.axis = bits, axis
        self.levels = 2**(bits - 1) - 1
        self.observer = PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                 quant_min=-self.levels, quant_max=self.levels)

    def qparams(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero point) per output channel of ``weight``, observed afresh."""
        self.observer.reset_min_max_vals()
        self.observer(weight.detach())
        return self.observer.calculate_qparams()

    def integers(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(int8 weights on this grid, float32 scale per output channel) of ``weight``."""
        scale, _ = self.qparams(weight)
        shape = [-1 if dim == self.axis else 1 for dim in range(weight.dim())]
        integers = torch.clamp(torch.round(weight.detach() / scale.view(shape)), -self.levels, self.levels)
        return integers.to(torch.int8), scale

    def forward(self, weight):
        scale, zero_point = self.qparams(weight)
        return torch.fake_quantize_per_channel_affine(weight, scale.to(weight.device, torch.float32),
                                                      zero_point.to(weight.device, torch.int32),
                                                      self.axis, -self.levels, self.levels)


def input_fake_quant(bits: int) -> FakeQuantize:
    """Per-tensor unsigned affine fake quantizer of ``bits`` (0..2^bits - 1), observer moving average."""
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=2**bits - 1, dtype=torch.quint8,
                        qscheme=torch.per_tensor_affine)


def _quantize_input(layer, args):
    quant = layer.input_quant
    never_observed = bool(torch.isinf(quant.activation_post_process.min_val))
    quant.enable_observer(layer.training or never_observed)
    return (quant(args[0]), *args[1:])


def quantize_weights(layer: nn.Module, bits: int) -> nn.Module:
    """Fake-quantize ``layer``'s weight per output channel at ``bits``; returns the layer."""
    parametrize.register_parametrization(layer, 'weight', WeightFakeQuant(bits, output_channel_axis(layer)))
    return layer


def quantize_input(layer: nn.Module, bits: int) -> nn.Module:
    """Fake-quantize ``layer``'s input per tensor at ``bits`` (observer calibrated in training); returns the layer."""
    layer.input_quant = input_fake_quant(bits)
    layer.register_forward_pre_hook(_quantize_input)
    return layer


def weight_quantizer(layer: nn.Module) -> WeightFakeQuant | None:
    if parametrize.is_parametrized(layer, 'weight'):
        return next((p for p in layer.parametrizations.weight if isinstance(p, WeightFakeQuant)), None)
    return None


def weight_bits_of(layer: nn.Module) -> int | None:
    """Bits of ``layer``'s fake-quantized weights; None for float weights."""
    quantizer = weight_quantizer(layer)
    return None if quantizer is None else quantizer.bits


def input_bits_of(layer: nn.Module) -> int | None:
    """Bits of ``layer``'s fake-quantized input; None for a float input."""
    quant = getattr(layer, 'input_quant', None)
    return None if quant is None else (quant.quant_max - quant.quant_min + 1).bit_length() - 1


def trained_weight(layer: nn.Module) -> torch.Tensor:
    """The float weight the optimiser trains (before fake quantization)."""
    return layer.parametrizations.weight.original if parametrize.is_parametrized(layer, 'weight') else layer.weight


def quantize_network(net: nn.Module, weight_bits: int | None, act_bits: int | None, analog_input=lambda layer: True):
    """Fake-quantize every conv / linear layer of ``net``: weights at ``weight_bits``, and the inputs of the layers
    ``analog_input(layer)`` accepts at ``act_bits`` (None: leave float). Registers :func:`map_weight_keys`."""
    layers = [module for module in net.modules() if isinstance(module, QUANTIZED_LAYER_TYPES)]
    for layer in layers:
        if weight_bits is not None:
            quantize_weights(layer, weight_bits)
        if act_bits is not None and analog_input(layer):
            quantize_input(layer, act_bits)
    net.register_load_state_dict_pre_hook(map_weight_keys)
    return net


def map_weight_keys(net, state_dict, prefix, *_):
    """Load-state-dict pre-hook: rename a checkpoint's weight keys to the network's (float <-> fake-quantized)."""
    expected = {prefix + key for key in net.state_dict()}
    matched = match_parametrized_keys(expected, state_dict)
    state_dict.clear()
    state_dict.update(matched)

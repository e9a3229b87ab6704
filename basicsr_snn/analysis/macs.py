"""Per-module multiply-accumulate counts from ``mmengine.analysis``.

mmengine traces one forward pass (``torch.jit.trace``) and attributes every counted
operator to the modules executing it. It counts one fused multiply-add as one op; for a
convolution that is ``output elements x C_in / groups x kernel area`` (depthwise and grouped
convolutions included), bias additions ignored. For a spiking network the traced pass runs
all its time steps, so a layer's count covers every step it actually ran.

mmengine does not count ``torch.fft``; by our convention a complex FFT of N points costs
5 N log2 N real flops (radix-2 Cooley-Tukey), i.e. 2.5 N log2 N MACs at two flops per MAC, and
a real-input one (``rfft*`` / ``irfft*``) half of that. A multi-dimensional transform over
sides whose product is N counts as one FFT of N points (row-column transforms total the same).
"""
import math
import warnings
from collections import Counter
from dataclasses import dataclass

import torch
from mmengine.analysis import FlopAnalyzer
from spikingjelly.activation_based import functional
from torch import nn


@dataclass
class MacCount:
    """MACs of one traced forward pass.

    Attributes:
        by_module (dict[str, Counter]): For every module path (``''`` is the whole model),
            the MACs executed inside it, per operator (``conv``, ``linear``, ``matmul``,
            ``upsample_bilinear2d``, ...).
    """
    by_module: dict

    def of(self, module_name: str) -> float:
        """All MACs executed inside the module at ``module_name``."""
        return sum(self.by_module.get(module_name, Counter()).values())

    def outside(self, module_names) -> dict[str, float]:
        """MACs per operator executed outside every listed module (which must not nest)."""
        remaining = Counter(self.by_module[''])
        for name in module_names:
            remaining.subtract(self.by_module.get(name, Counter()))
        return {operator: count for operator, count in remaining.items() if count > 0}


def _free(_inputs, _outputs):
    return 0


# torch.fft operator: (transformed dims when the call gives none, side that is real or None)
_FFT_OPERATORS = {
    **{f'aten::fft_{kind}': ((-1, ), None) for kind in ('fft', 'ifft')},
    **{f'aten::fft_{kind}': ((-2, -1), None) for kind in ('fft2', 'ifft2')},
    **{f'aten::fft_{kind}': (None, None) for kind in ('fftn', 'ifftn')},
    'aten::fft_rfft': ((-1, ), 'input'), 'aten::fft_irfft': ((-1, ), 'output'),
    'aten::fft_rfft2': ((-2, -1), 'input'), 'aten::fft_irfft2': ((-2, -1), 'output'),
    'aten::fft_rfftn': (None, 'input'), 'aten::fft_irfftn': (None, 'output'),
}


def fft_macs(signal_shape, dims, real: bool) -> float:
    """MACs of FFTs over ``dims`` of a signal of ``signal_shape`` (module convention)."""
    points = math.prod(signal_shape[dim] for dim in dims)
    return math.prod(signal_shape) * 2.5 * math.log2(points) * (0.5 if real else 1.)


def _fft_handle(default_dims, real_side):
    def count(inputs, outputs):
        # aten::fft_<kind>(input, s or n, dim, norm)
        signal = outputs[0] if real_side != 'input' else inputs[0]
        shape = signal.type().sizes()
        sizes, dims = inputs[1].toIValue(), inputs[2].toIValue()
        if dims is None:
            dims = default_dims if default_dims is not None or sizes is None else range(-len(sizes), 0)
        dims = range(len(shape)) if dims is None else [dims] if isinstance(dims, int) else dims
        return fft_macs(shape, dims, real_side is not None)

    return count


def count_macs(model: nn.Module, inputs: torch.Tensor, fold_batchnorm: bool = True) -> MacCount:
    """Count the MACs of one forward pass of ``model`` on ``inputs``, per module.

    Spiking neuron state is reset before and after the traced pass.

    Args:
        model (nn.Module): Network in the mode it should be measured in (normally eval).
        inputs (Tensor | tuple[Tensor]): Forward arguments; MACs scale with their batch size.
        fold_batchnorm (bool): Count batch normalization as free, since at inference it folds
            into the neighbouring convolution's weights and bias (or the neuron threshold).
            Layer / group / instance norms are always counted. Default: True.

    Returns:
        MacCount: per-module, per-operator MACs.
    """
    analyzer = FlopAnalyzer(model, inputs if isinstance(inputs, tuple) else (inputs,))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
    if fold_batchnorm:
        # mmengine's set_op_handle(name, None) keeps the default handle, so count zero instead.
        analyzer.set_op_handle('aten::batch_norm', _free)
    for operator, (default_dims, real_side) in _FFT_OPERATORS.items():
        analyzer.set_op_handle(operator, _fft_handle(default_dims, real_side))
    functional.reset_net(model)
    # Tracing re-runs Python-side checks that spikingjelly and other archs warn about once per
    # trace; they say nothing about the counts.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        by_module = {name: Counter(ops) for name, ops in analyzer.by_module_and_operator().items()}
    functional.reset_net(model)
    return MacCount(by_module=by_module)

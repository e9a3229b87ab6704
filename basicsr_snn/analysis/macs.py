"""Per-module multiply-accumulate counts from ``mmengine.analysis``.

mmengine traces one forward pass (``torch.jit.trace``) and attributes every counted
operator to the modules executing it. It counts one fused multiply-add as one op; for a
convolution that is ``output elements x C_in / groups x kernel area`` (depthwise and grouped
convolutions included), bias additions ignored. For a spiking network the traced pass runs
all its time steps, so a layer's count covers every step it actually ran.
"""
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
    functional.reset_net(model)
    # Tracing re-runs Python-side checks that spikingjelly and other archs warn about once per
    # trace; they say nothing about the counts.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        by_module = {name: Counter(ops) for name, ops in analyzer.by_module_and_operator().items()}
    functional.reset_net(model)
    return MacCount(by_module=by_module)

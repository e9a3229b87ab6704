"""Hook-based recorders of spiking activity.

Two views of the same activity, both recorded during an ordinary forward pass:

* :class:`FiringRateMonitor` watches the *outputs* of spiking neurons (the fraction of
  neurons that fire per time step). It is cheap enough to run at every validation and is
  what training logs per level of the network.
* :class:`SynapticInputMonitor` watches the *inputs* of conv and linear layers (the
  fraction of nonzero entries, and whether the input is binary). The energy estimate
  needs this view: a synaptic layer fed by binary spikes performs one accumulate per
  nonzero input and outgoing synapse.

Both are context managers: hooks are attached on ``__enter__`` and removed on ``__exit__``,
the records survive the ``with`` block. Counts accumulate as tensors on the model's device,
so recording costs no host-device synchronisation until the rates are read.
"""
from collections import defaultdict

import torch
from spikingjelly.activation_based import neuron
from torch import nn

from basicsr_snn.archs.spiking_blocks import ElementwiseAdd
from basicsr_snn.utils.hooks import ForwardHooks

SPIKING_NEURON_TYPES = (neuron.BaseNode, neuron.SimpleBaseNode)
SYNAPTIC_LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


def aggregate_by_level(rates: dict[str, float], counts: dict[str, int], depth: int = 1) -> dict[str, float]:
    """Merge per-module rates into per-level rates, weighted by element count.

    Args:
        rates (dict[str, float]): Rate per module path, e.g. ``{'encoder1.0.lif1': 0.1}``.
        counts (dict[str, int]): Number of recorded elements per module path (the weights).
        depth (int): How many leading path components name a level: with 1,
            ``encoder1.0.lif1`` and ``encoder1.1.lif2`` both fall under ``encoder1``.

    Returns:
        dict[str, float]: Rate per level, in order of first appearance.
    """
    if depth < 1:
        raise ValueError(f'depth must be >= 1, got {depth}')
    spikes, elements = defaultdict(float), defaultdict(int)
    for path, rate in rates.items():
        level = '.'.join(path.split('.')[:depth])
        spikes[level] += rate * counts[path]
        elements[level] += counts[path]
    return {level: spikes[level] / elements[level] for level in spikes if elements[level]}


class _ModulesOfTypes(ForwardHooks):
    """Hooks on every submodule of the given types; ``targets`` lists them as ``(path, module)``."""

    def __init__(self, model, module_types):
        super().__init__(model)
        self.module_types = module_types
        self.targets = [(name, module) for name, module in model.named_modules() if isinstance(module, module_types)]

    def hook_for(self, name, module):
        return self._hook(name) if isinstance(module, self.module_types) else None

    def _hook(self, name):
        """``(kind, hook)`` recording the module at path ``name``."""
        raise NotImplementedError


class FiringRateMonitor(_ModulesOfTypes):
    """Record the firing rate of every spiking neuron module during normal forwards.

    The rate of a module is the fraction of ones in its output spike tensor, over all time
    steps, images and forwards seen while the monitor was active.

    Example::

        with FiringRateMonitor(net) as monitor:
            net(lq)
        monitor.rates()            # {'encoder1.0.lif1': 0.12, ...}
        monitor.rates_by_level()   # {'encoder1': 0.11, 'latent': 0.05, ...}
        monitor.mean_rate()        # one number for the whole network

    Args:
        model (nn.Module): Network to watch.
        neuron_types (tuple[type]): Module classes whose outputs are spikes. Default:
            spikingjelly's ``BaseNode`` and ``SimpleBaseNode`` (LIF, IF, PLIF, ...).
        keep_graph (bool): Keep the spike counts in the autograd graph, so that
            :meth:`mean_rate_tensor` can be penalised (the firing-rate budget of training).
            Default: False (counts detached, in float64).
    """

    def __init__(self, model, neuron_types=SPIKING_NEURON_TYPES, keep_graph=False):
        super().__init__(model, neuron_types)
        self.keep_graph = keep_graph
        self._spikes = {}
        self._elements = defaultdict(int)

    def _hook(self, name):
        def record_output(_module, _inputs, output):
            total = output.sum() if self.keep_graph else output.detach().sum(dtype=torch.float64)
            self._spikes[name] = self._spikes[name] + total if name in self._spikes else total
            self._elements[name] += output.numel()

        return 'forward', record_output

    def reset(self) -> None:
        """Forget everything recorded so far (e.g. between validation runs)."""
        self._spikes.clear()
        self._elements.clear()

    def counts(self) -> dict[str, int]:
        """Number of recorded output elements per module path."""
        return dict(self._elements)

    def rates(self) -> dict[str, float]:
        """Firing rate per neuron module path, for the modules that ran."""
        return {name: float(self._spikes[name]) / self._elements[name] for name in self._spikes}

    def rates_by_level(self, depth: int = 1) -> dict[str, float]:
        """Firing rate per level (top-level child by default); see :func:`aggregate_by_level`."""
        return aggregate_by_level(self.rates(), self._elements, depth)

    def mean_rate(self) -> float:
        """Fraction of ones over every recorded neuron output; ``nan`` if nothing was recorded."""
        elements = sum(self._elements.values())
        return sum(float(total) for total in self._spikes.values()) / elements if elements else float('nan')

    def mean_rate_tensor(self) -> torch.Tensor:
        """:meth:`mean_rate` as a tensor on the network's device, without a host sync (with its graph
        under ``keep_graph``)."""
        if not self._spikes:
            raise RuntimeError('FiringRateMonitor recorded no spiking neuron output')
        return sum(self._spikes.values()) / sum(self._elements.values())


class SynapticInputMonitor(_ModulesOfTypes):
    """Record, for each conv / linear layer, how sparse and whether binary its inputs are.

    Per layer it keeps: the number of nonzero input entries and of all input and output entries,
    whether every input seen was binary (only 0 and 1), and the summed leading dimension of the
    inputs.
    When images are fed one at a time, the leading dimension is the number of time steps the
    layer processed: ``T`` for a multi-step layer fed ``(T, 1, C, H, W)`` or a layer inside
    ``SeqToANNContainer`` fed ``(T*1, C, H, W)``, ``1`` for a layer that runs once (e.g. an
    encoding conv applied before the image is repeated over time), and it adds up over repeated
    single-step calls.

    Args:
        model (nn.Module): Network to watch.
        layer_types (tuple[type]): Synaptic layer classes. Default: every ``nn.Conv*d``,
            ``nn.ConvTranspose*d`` (spikingjelly's ``layer.Conv2d`` included) and ``nn.Linear``.
    """

    def __init__(self, model, layer_types=SYNAPTIC_LAYER_TYPES):
        super().__init__(model, layer_types)
        self._nonzero = {}
        self._binary = {}
        self.elements = defaultdict(int)
        self.output_elements = defaultdict(int)
        self.leading = defaultdict(int)

    def _hook(self, name):
        def record_input(_module, inputs, output):
            x = inputs[0].detach()
            nonzero = x.count_nonzero()
            binary = torch.logical_or(x == 0, x == 1).all()
            if name in self._nonzero:
                self._nonzero[name] = self._nonzero[name] + nonzero
                self._binary[name] = self._binary[name] & binary
            else:
                self._nonzero[name], self._binary[name] = nonzero, binary
            self.elements[name] += x.numel()
            self.output_elements[name] += output.numel()
            self.leading[name] += x.shape[0]

        return 'forward', record_input

    def input_rate(self, name: str) -> float:
        """Fraction of nonzero entries among all inputs the layer received."""
        return int(self._nonzero[name]) / self.elements[name]

    def is_binary(self, name: str) -> bool:
        """True when every input the layer received contained only zeros and ones."""
        return bool(self._binary[name])

    def recorded(self) -> list[str]:
        """Paths of the layers that ran, in module order."""
        return [name for name, _ in self.targets if name in self._nonzero]


class AdditionCounter(_ModulesOfTypes):
    """Output elements of every :class:`ElementwiseAdd` (residual and skip additions) while inside ``with``."""

    def __init__(self, model):
        super().__init__(model, ElementwiseAdd)
        self.count = 0

    def _hook(self, name):
        def record_output(_module, _inputs, output):
            self.count += output.numel()

        return 'forward', record_output

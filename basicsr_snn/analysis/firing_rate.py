"""Hook-based recorders of spiking activity.

Two views of the same activity, both recorded during an ordinary forward pass:

* :class:`FiringRateMonitor` watches the *outputs* of spiking neurons (the mean output per
  neuron and time step: the fraction that fire for binary neurons, the mean count for
  multi-level ones). It is cheap enough to run at every validation and is what training logs
  per level of the network.
* :class:`SynapticInputMonitor` watches the *inputs* of conv and linear layers (the mean
  spike count per entry, and whether the input is spikes: binary, or counts of a multi-level
  neuron). The energy estimate needs this view: a synaptic layer fed by spikes performs one
  accumulate per spike and outgoing synapse, a count of k being k spikes.

A multi-level neuron declares D, the most spikes it emits per step, as its ``spike_levels``
(:func:`spike_levels_of`); binary neurons have D = 1.

Both are context managers: hooks are attached on ``__enter__`` and removed on ``__exit__``,
the records survive the ``with`` block. Counts accumulate as tensors on the model's device,
so recording costs no host-device synchronisation until the rates are read.
"""
import weakref
from collections import defaultdict

import torch
from spikingjelly.activation_based import neuron, surrogate
from torch import nn

from basicsr_snn.archs.spiking_blocks import ElementwiseAdd
from basicsr_snn.utils.hooks import ForwardHooks

SPIKING_NEURON_TYPES = (neuron.BaseNode, neuron.SimpleBaseNode)
SYNAPTIC_LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


def spike_levels_of(module: nn.Module) -> int:
    """D, the most spikes a neuron module emits per step: its ``spike_levels``, else the count limit of
    spikingjelly's multi-level surrogate (``ILIFNode``), else 1 (a binary neuron)."""
    levels = getattr(module, 'spike_levels', None)
    if levels is None and isinstance(getattr(module, 'surrogate_function', None), surrogate.MultiLevelSpikeCount):
        levels = module.surrogate_function.max_spike_count
    return 1 if levels is None else int(levels)


def counts_within(x: torch.Tensor, levels: int) -> torch.Tensor:
    """True (a 0-dim bool tensor, no host sync) when every entry of ``x`` is an integer in ``[0, levels]``."""
    return ((x >= 0) & (x <= levels) & (x == x.round())).all()


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

    The rate of a module is its mean output entry, over all time steps, images and forwards seen
    while the monitor was active: the fraction of ones for a binary neuron, the mean spike count
    per step (in ``[0, D]``) for a multi-level one.

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
        self._steps = defaultdict(int)

    def _hook(self, name):
        def record_output(module, _inputs, output):
            total = output.sum() if self.keep_graph else output.detach().sum(dtype=torch.float64)
            self._spikes[name] = self._spikes[name] + total if name in self._spikes else total
            self._elements[name] += output.numel()
            self._steps[name] += output.shape[0] if getattr(module, 'step_mode', 's') == 'm' else 1

        return 'forward', record_output

    def reset(self) -> None:
        """Forget everything recorded so far (e.g. between validation runs)."""
        self._spikes.clear()
        self._elements.clear()
        self._steps.clear()

    def counts(self) -> dict[str, int]:
        """Number of recorded output elements per module path."""
        return dict(self._elements)

    def steps(self) -> dict[str, int]:
        """Time steps run per module path: the leading dimension of each multi-step output, one per
        single-step call (summed over the forwards seen)."""
        return dict(self._steps)

    def rates(self) -> dict[str, float]:
        """Firing rate per neuron module path, for the modules that ran."""
        return {name: float(self._spikes[name]) / self._elements[name] for name in self._spikes}

    def rates_by_level(self, depth: int = 1) -> dict[str, float]:
        """Firing rate per level (top-level child by default); see :func:`aggregate_by_level`."""
        return aggregate_by_level(self.rates(), self._elements, depth)

    def mean_rate(self) -> float:
        """Mean entry (fraction of ones, or mean count) over every recorded neuron output; ``nan`` if
        nothing was recorded."""
        elements = sum(self._elements.values())
        return sum(float(total) for total in self._spikes.values()) / elements if elements else float('nan')

    def mean_rate_tensor(self) -> torch.Tensor:
        """:meth:`mean_rate` as a tensor on the network's device, without a host sync (with its graph
        under ``keep_graph``)."""
        if not self._spikes:
            raise RuntimeError('FiringRateMonitor recorded no spiking neuron output')
        return sum(self._spikes.values()) / sum(self._elements.values())


class SynapticInputMonitor(ForwardHooks):
    """Record, for each conv / linear layer, how many spikes and of how many levels its inputs carry.

    An input is *spikes of D levels* (integer counts in ``[0, D]``, one count of k standing for k
    binary spikes) when:

    * it is the output of a spiking neuron module (or a view of it, e.g. time folded into the
      batch) and every entry is an integer in ``[0, D]``, D being what that neuron declares
      (:func:`spike_levels_of`): a declaration, so a layer fed by a D = 4 neuron that happened to
      emit only zeros and ones is still stored and costed as D = 4 counts;
    * otherwise, when every entry is 0 or 1 (binary spikes whatever made them, e.g. an expansion
      of counts into binary spike maps): D = 1.

    Anything else is analog. Over several calls a layer takes the largest D it was fed, and is
    analog as soon as one call fed it analog values.

    Per layer it keeps: the sum and the number of nonzero input entries, the number of all input
    and output entries, the inputs' D and the summed leading dimension of the inputs.
    When images are fed one at a time, the leading dimension is the number of time steps the
    layer processed: ``T`` for a multi-step layer fed ``(T, 1, C, H, W)`` or a layer inside
    ``SeqToANNContainer`` fed ``(T*1, C, H, W)``, ``1`` for a layer that runs once (e.g. an
    encoding conv applied before the image is repeated over time), and it adds up over repeated
    single-step calls.

    Args:
        model (nn.Module): Network to watch.
        layer_types (tuple[type]): Synaptic layer classes. Default: every ``nn.Conv*d``,
            ``nn.ConvTranspose*d`` (spikingjelly's ``layer.Conv2d`` included) and ``nn.Linear``.
        neuron_types (tuple[type]): Module classes whose outputs are spikes (their D declared by
            :func:`spike_levels_of`). Default: :data:`SPIKING_NEURON_TYPES`.
    """

    def __init__(self, model, layer_types=SYNAPTIC_LAYER_TYPES, neuron_types=SPIKING_NEURON_TYPES):
        super().__init__(model)
        self.layer_types, self.neuron_types = layer_types, neuron_types
        self.targets = [(name, module) for name, module in model.named_modules() if isinstance(module, layer_types)]
        # storage address of a live neuron output -> (that output, its D); the weak reference tells a live
        # output from a freed one whose address the allocator gave to another tensor
        self._produced = {}
        self._sum, self._nonzero, self._fewest_levels, self._most_levels = {}, {}, {}, {}
        self.elements = defaultdict(int)
        self.output_elements = defaultdict(int)
        self.leading = defaultdict(int)

    def hook_for(self, name, module):
        if isinstance(module, self.layer_types):
            return 'forward', self._record_input(name)
        if isinstance(module, self.neuron_types):
            return 'forward', self._record_producer(spike_levels_of(module))
        return None

    def _record_producer(self, levels):
        def record_output(_module, _inputs, output):
            if torch.is_tensor(output):
                self._produced[output.untyped_storage().data_ptr()] = (weakref.ref(output), levels)

        return record_output

    def _declared_levels(self, x):
        """D of the neuron whose live output ``x`` is (a view of), or None."""
        address = x.untyped_storage().data_ptr()
        output, levels = self._produced.get(address, (lambda: None, None))
        if output() is None:
            self._produced.pop(address, None)
            return None
        return levels

    def _record_input(self, name):
        def record_input(_module, inputs, output):
            x = inputs[0].detach()
            declared = self._declared_levels(x)
            # per call: D of declared counts, else 1 for binary values, else 0 (analog); no host sync
            levels = torch.where(counts_within(x, 1), 1, 0)
            if declared is not None and declared > 1:
                levels = torch.where(counts_within(x, declared), declared, levels)
            total, nonzero = x.sum(dtype=torch.float64), x.count_nonzero()
            if name in self._sum:
                self._sum[name] = self._sum[name] + total
                self._nonzero[name] = self._nonzero[name] + nonzero
                self._fewest_levels[name] = torch.minimum(self._fewest_levels[name], levels)
                self._most_levels[name] = torch.maximum(self._most_levels[name], levels)
            else:
                self._sum[name], self._nonzero[name] = total, nonzero
                self._fewest_levels[name] = self._most_levels[name] = levels
            self.elements[name] += x.numel()
            self.output_elements[name] += output.numel()
            self.leading[name] += x.shape[0]

        return record_input

    def spike_levels(self, name: str) -> int | None:
        """D of the layer's inputs (1: binary spikes), or None when it was fed analog values."""
        return int(self._most_levels[name]) if int(self._fewest_levels[name]) > 0 else None

    def input_rate(self, name: str) -> float:
        """Spikes per input entry: the mean count for spike inputs (the fraction of ones when binary), the
        fraction of nonzero entries for analog ones."""
        spikes = self._sum[name] if self.spike_levels(name) is not None else self._nonzero[name]
        return float(spikes) / self.elements[name]

    def recorded(self) -> list[str]:
        """Paths of the layers that ran, in module order."""
        return [name for name, _ in self.targets if name in self._sum]


class AdditionCounter(_ModulesOfTypes):
    """Output elements of every :class:`ElementwiseAdd` (residual and skip additions) while inside ``with``."""

    def __init__(self, model):
        super().__init__(model, ElementwiseAdd)
        self.count = 0

    def _hook(self, name):
        def record_output(_module, _inputs, output):
            self.count += output.numel()

        return 'forward', record_output

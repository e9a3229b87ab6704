"""Compute-energy estimate shared by spiking students, their ReLU twins and ANN teachers.

The convention (docs/energy.md states it for users):

* MACs per layer come from ``mmengine.analysis`` (:mod:`.macs`) on one image, over every
  time step the layer actually ran.
* A conv / linear layer fed by spikes (spike-fed) costs synaptic operations (SOPs), each an
  accumulate (AC): ``SOPs = input rate x steps x MACs per step``, where the input rate is the
  measured number of spikes per input entry (:class:`.SynapticInputMonitor`). Spikes are binary
  (the rate is the fraction of ones) or the integer counts in ``[0, D]`` of a multi-level neuron
  that declares D (its ``spike_levels``): a count of k is k binary spikes (over D virtual steps),
  so the rate is the mean count and the SOPs are the sum of counts x fan-out. Dense
  MACs include the kernel taps on zero padding, so this is a little above the exact fan-out
  count of spikingjelly's ``op_counter.SynOpCounter`` (about 1% at 256x256 for SpikerIR).
* A layer fed analog values (the encoding layer fed the image, attention gates, the output
  head) costs its MACs as multiply-accumulates (MAC), once per time step it actually ran.
  Operators outside conv / linear layers that mmengine counts (matmul, norms, pooling,
  interpolation) are analog too. An ANN is all MACs.
* Residual and skip additions (:class:`~basicsr_snn.archs.spiking_blocks.ElementwiseAdd`
  modules: the shortcut of every residual block, the encoder-decoder skips) cost one
  accumulate per output element, in spiking and ANN networks alike.
* Energy = MACs x E_MAC + (SOPs + additions) x E_AC, with 45 nm figures from Horowitz (ISSCC 2014), at each
  layer's own precision, read from the network (:func:`layer_precision`): a layer with float weights computes in
  fp32; one with fake-quantized weights (:mod:`~basicsr_snn.archs.quantization`) accumulates at the weights' width
  when spike-fed, and multiply-accumulates at the wider of its weights and its quantized input otherwise (fp32 when
  its input is float). Operators outside conv / linear layers and the additions run at the network's activation
  precision: ``int<act_bits>`` for a network with quantized activations, else fp32. ``precision`` overrides all of
  it with one preset: a what-if, labelled as one.
* fp32, fp16 and int8 figures are spikingjelly's ``SimpleEnergyCostConfig``; int4 is derived from int8 (an integer
  multiplier's energy grows about with the square of the bit width, an adder's about linearly): multiply
  0.2 pJ x (4/8)^2 = 0.05 pJ, add 0.03 pJ x 4/8 = 0.015 pJ, MAC 0.065 pJ, AC 0.015 pJ.

Not included in compute: neuron state updates, other element-wise operations and biases. Batch
normalization is treated as folded into the neighbouring layer (free) unless
``fold_batchnorm=False``. Memory traffic (weights, activations, membrane potentials) is a
separate figure, :meth:`EnergyReport.memory`, under the assumptions of :mod:`.memory`.
"""
import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.op_counter import SimpleEnergyCostConfig
from tqdm import tqdm

from basicsr_snn.analysis.firing_rate import AdditionCounter, FiringRateMonitor, SynapticInputMonitor
from basicsr_snn.analysis.macs import count_macs
from basicsr_snn.analysis.memory import MEMORY_ASSUMPTIONS, MemoryAssumptions, MemoryTraffic, memory_traffic
from basicsr_snn.archs.quantization import input_bits_of, weight_bits_of
from basicsr_snn.utils.checks import check_choice
from basicsr_snn.utils.hooks import evaluating



def _int_preset(bits: int, base: SimpleEnergyCostConfig = SimpleEnergyCostConfig.int8(), base_bits: int = 8) -> dict:
    """MAC and AC energy at ``bits`` from an integer preset: multiplier ~ bits^2, adder ~ bits."""
    add, multiply = base.e_ac_pj, base.e_mac_pj - base.e_ac_pj
    ratio = bits / base_bits
    return {'mac_pj': multiply * ratio**2 + add * ratio, 'ac_pj': add * ratio}


#: Energy per operation in picojoules at 45 nm (Horowitz 2014): MAC = multiply + add, AC = add; fp32, fp16 and
#: int8 read from spikingjelly's ``SimpleEnergyCostConfig`` presets, int4 derived from int8 (module docstring).
ENERGY_PRESETS_45NM = {
    **{precision: {'mac_pj': preset.e_mac_pj, 'ac_pj': preset.e_ac_pj}
       for precision, preset in ((name, getattr(SimpleEnergyCostConfig, name)()) for name in ('fp32', 'fp16', 'int8'))},
    'int4': _int_preset(4),
}

MEMORY_NOTE = ('Compute = MACs x E_MAC + (SOPs + additions) x E_AC. Memory = weights read once per step, '
               'layer inputs and outputs moved once, membranes written and read between steps (none at T = 1) '
               'unless local '
               '(basicsr_snn.analysis.memory). Total = compute + memory.')


def energy_per_op(precision: str = 'fp32', mac_pj: float | None = None,
                  ac_pj: float | None = None) -> tuple[float, float]:
    """Return ``(mac_pj, ac_pj)`` for a preset, with optional overrides.

    Args:
        precision (str): One of ``ENERGY_PRESETS_45NM`` (``'fp32'``, ``'fp16'``, ``'int8'``) or
            ``'custom'``, which requires both ``mac_pj`` and ``ac_pj``.
        mac_pj (float | None): Energy of one MAC in pJ; overrides the preset.
        ac_pj (float | None): Energy of one accumulate in pJ; overrides the preset.
    """
    if precision == 'custom':
        if mac_pj is None or ac_pj is None:
            raise ValueError("precision='custom' needs both mac_pj and ac_pj")
        return float(mac_pj), float(ac_pj)
    if precision not in ENERGY_PRESETS_45NM:
        raise ValueError(f'Unknown precision {precision!r}; choose one of '
                         f'{sorted(ENERGY_PRESETS_45NM) + ["custom"]}')
    preset = ENERGY_PRESETS_45NM[precision]
    return (float(preset['mac_pj'] if mac_pj is None else mac_pj), float(preset['ac_pj'] if ac_pj is None else ac_pj))


def layer_precision(layer: torch.nn.Module, spike_fed: bool) -> str:
    """The preset a conv / linear layer computes at (module docstring): ``'fp32'``, ``'int8'`` or ``'int4'``."""
    weight_bits = weight_bits_of(layer)
    if weight_bits is None:
        return 'fp32'
    if spike_fed:
        return f'int{weight_bits}'
    input_bits = input_bits_of(layer)
    return 'fp32' if input_bits is None else f'int{max(weight_bits, input_bits)}'


def format_energy(picojoules: float) -> str:
    """Human-readable energy: pJ, nJ, µJ, mJ or J."""
    for unit, scale in (('J', 1e12), ('mJ', 1e9), ('µJ', 1e6), ('nJ', 1e3)):
        if picojoules >= scale:
            return f'{picojoules / scale:.3g} {unit}'
    return f'{picojoules:.3g} pJ'


def format_count(count: float) -> str:
    """Human-readable operation or parameter count: 1.23G, 45.6M, 7.89K."""
    for suffix, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if count >= scale:
            return f'{count / scale:.3g}{suffix}'
    return f'{count:.3g}'


def _defined(value):
    return None if math.isnan(value) else value


@dataclass
class LayerEnergy:
    """Cost of one conv / linear layer for one image.

    Attributes:
        name (str): Module path.
        type (str): Module class name.
        steps (float): Time steps the layer ran per image (1 for a layer run once).
        macs_per_step (float): Dense MACs of one step.
        input_rate (float): Spikes per input entry: the fraction of ones for binary spikes, the mean
            count for counts; for an analog input, the fraction of nonzero entries (its density).
        spike_fed (bool): Input was spikes and the network was analysed as spiking: costed as SOPs.
        sops (float): Synaptic operations (ACs), ``input_rate x steps x macs_per_step``; 0 if analog.
        macs (float): MACs costed as multiply-accumulates, ``steps x macs_per_step``; 0 if spike-fed.
        energy_pj (float): ``sops x ac_pj + macs x mac_pj`` at the layer's ``precision``.
        precision (str): The preset its operations are costed at (:func:`layer_precision`, or the what-if one).
        weight_bits (int | None): Bits of its quantized weights; None: float.
        input_bits (int | None): Bits of its quantized analog input; None: float (or spikes).
        output_bits (int | None): Bits its output is stored at (the network's ``act_bits``); None: float.
        parameters (int): The layer's weights and bias, read once per step.
        input_elements (float), output_elements (float): Input / output entries over all its steps.
        spike_levels (int | None): D of a spike-fed layer's input (1: binary spikes, D > 1: counts in
            ``[0, D]``, see :class:`.SynapticInputMonitor`); None when costed as MACs.
    """
    name: str
    type: str
    steps: float
    macs_per_step: float
    input_rate: float
    spike_fed: bool
    sops: float
    macs: float
    energy_pj: float
    parameters: int = 0
    input_elements: float = 0.
    output_elements: float = 0.
    spike_levels: int | None = None
    precision: str = 'fp32'
    weight_bits: int | None = None
    input_bits: int | None = None
    output_bits: int | None = None


@dataclass
class EnergyReport:
    """Per-image compute-energy estimate of one network (see the module docstring).

    Attributes:
        image_size (tuple[int, int]): (H, W) of the analysed images.
        num_images (int): Images the firing rates were averaged over.
        time_steps (int | None): The network's ``T`` (None for a network without one).
        precision (str): ``'per layer'`` (each layer at its own precision, :func:`layer_precision`) or the what-if
            preset every operation was costed at.
        mac_pj (float), ac_pj (float): Energy per MAC / per AC in pJ of the operators outside conv / linear
            layers and of the additions (the network's activation precision, or the what-if preset).
        params (int): Number of parameters.
        layers (list[LayerEnergy]): One row per conv / linear layer that ran.
        other_macs (dict[str, float]): MACs of operators outside conv / linear layers (per
            mmengine operator name), costed as MACs.
        neuron_rates (dict[str, float]): Firing rate of each spiking neuron module (mean count for a
            multi-level neuron).
        neuron_elements (dict[str, float]): Output entries of each spiking neuron module per image,
            over all steps (the membrane updates).
        neuron_steps (dict[str, float]): Time steps each spiking neuron module ran per image.
        additions (float): Element-wise residual / skip additions per image, costed as ACs.
    """
    image_size: tuple
    num_images: int
    time_steps: int | None
    precision: str
    mac_pj: float
    ac_pj: float
    params: int
    layers: list
    other_macs: dict
    neuron_rates: dict = field(default_factory=dict)
    neuron_elements: dict = field(default_factory=dict, repr=False)
    neuron_steps: dict = field(default_factory=dict, repr=False)
    additions: float = 0.

    @property
    def sops(self):
        return sum(layer.sops for layer in self.layers)

    @property
    def macs(self):
        return sum(layer.macs for layer in self.layers) + sum(self.other_macs.values())

    @property
    def energy_pj(self):
        return (sum(layer.energy_pj for layer in self.layers) + self.additions * self.ac_pj
                + sum(self.other_macs.values()) * self.mac_pj)

    @property
    def energy_uj(self):
        return self.energy_pj * 1e-6

    def memory(self, assumptions: str | MemoryAssumptions = 'gpu') -> MemoryTraffic:
        """Memory traffic per image under ``assumptions`` (a :data:`MEMORY_ASSUMPTIONS` name or an instance)."""
        if isinstance(assumptions, str):
            assumptions = MEMORY_ASSUMPTIONS[check_choice('memory assumptions', assumptions, MEMORY_ASSUMPTIONS)]
        return memory_traffic(self.layers, self.neuron_elements, self.neuron_steps, assumptions)

    def total_pj(self, assumptions: str | MemoryAssumptions = 'gpu') -> float:
        """Compute plus memory energy per image."""
        return self.energy_pj + self.memory(assumptions).energy_pj

    @property
    def mean_input_rate(self):
        """Input rate of the spike-fed layers weighted by their dense MACs (= SOPs / dense MACs);
        ``nan`` when no layer is spike-fed."""
        dense = sum(layer.steps * layer.macs_per_step for layer in self.layers if layer.spike_fed)
        return self.sops / dense if dense else float('nan')

    @property
    def mean_firing_rate(self):
        """Mean entry (fraction of ones, or mean count) over all spiking-neuron outputs; ``nan`` without
        spiking neurons."""
        elements = sum(self.neuron_elements.values())
        spikes = sum(self.neuron_rates[name] * self.neuron_elements[name] for name in self.neuron_rates)
        return spikes / elements if elements else float('nan')

    def to_dict(self, memory: str = 'gpu') -> dict:
        """JSON-ready dict: every attribute plus the totals (undefined mean rates as None).

        ``energy_pj`` / ``compute_pj`` are the compute energy; ``memory_pj`` and ``total_pj`` follow
        the ``memory`` assumptions; ``memory`` holds the traffic under every named assumption set.
        """
        traffic = {name: self.memory(name) for name in MEMORY_ASSUMPTIONS}
        chosen = traffic[check_choice('memory', memory, traffic)]
        report = asdict(self)
        report.pop('neuron_elements')
        report.pop('neuron_steps')
        report.update(sops=self.sops, macs=self.macs, energy_pj=self.energy_pj, energy_uj=self.energy_uj,
                      compute_pj=self.energy_pj, memory_assumptions=memory, memory_pj=chosen.energy_pj,
                      total_pj=self.energy_pj + chosen.energy_pj,
                      memory={name: dict(moved.to_dict(), total_pj=self.energy_pj + moved.energy_pj,
                                         assumptions=MEMORY_ASSUMPTIONS[name].describe())
                              for name, moved in traffic.items()},
                      mean_input_rate=_defined(self.mean_input_rate), mean_firing_rate=_defined(self.mean_firing_rate),
                      note=MEMORY_NOTE)
        return report

    def table(self) -> str:
        """Plain-text per-layer table with totals and the memory-traffic caveat."""
        other = '(outside conv/linear)'
        name_width = max([len(other)] + [len(layer.name) for layer in self.layers])
        type_width = max([12] + [len(layer.type) for layer in self.layers] + [len(op) for op in self.other_macs])
        header = (f'{"layer":<{name_width}} {"type":<{type_width}} {"steps":>5} {"MACs/step":>9} {"in rate":>7} '
                  f'{"SOPs":>8} {"MACs":>8} {"prec":>5} {"energy":>9}')
        lines = [header, '-' * len(header)]
        for layer in self.layers:
            lines.append(f'{layer.name:<{name_width}} {layer.type:<{type_width}} {layer.steps:>5.3g} '
                         f'{format_count(layer.macs_per_step):>9} {layer.input_rate:>7.3f} '
                         f'{format_count(layer.sops):>8} {format_count(layer.macs):>8} {layer.precision:>5} '
                         f'{format_energy(layer.energy_pj):>9}')
        for operator, count in self.other_macs.items():
            lines.append(f'{other:<{name_width}} {operator:<{type_width}} {"":>5} {"":>9} {"":>7} {"":>8} '
                         f'{format_count(count):>8} {"":>5} {format_energy(count * self.mac_pj):>9}')
        if self.additions:
            lines.append(f'{"(residual/skip additions)":<{name_width}} {"add":<{type_width}} {"":>5} {"":>9} '
                         f'{"":>7} {format_count(self.additions):>8} {"":>8} {"":>5} '
                         f'{format_energy(self.additions * self.ac_pj):>9}')
        height, width = self.image_size
        lines += ['-' * len(header),
                  f'per image {height}x{width}, T={self.time_steps}, {self.precision} '
                  f'(outside conv/linear and additions: MAC {self.mac_pj:.3g} pJ, AC {self.ac_pj:.3g} pJ), '
                  f'rates over {self.num_images} image(s)',
                  f'params {format_count(self.params)} | MACs {format_count(self.macs)} | '
                  f'SOPs {format_count(self.sops)} | mean input rate {self.mean_input_rate:.4f} | '
                  f'mean firing rate {self.mean_firing_rate:.4f} | compute energy {format_energy(self.energy_pj)}',
                  'memory: ' + ', '.join(f'{name} {format_energy(self.memory(name).energy_pj)}'
                                         for name in MEMORY_ASSUMPTIONS),
                  MEMORY_NOTE]
        return '\n'.join(lines)


def analyse_energy(model: torch.nn.Module, images: torch.Tensor, precision: str | None = None,
                   mac_pj: float | None = None,
                   ac_pj: float | None = None, spiking: bool = True, fold_batchnorm: bool = True,
                   progress: str | None = None) -> EnergyReport:
    """Estimate the compute energy per image of ``model`` on real ``images``.

    MACs are counted by tracing the first image; input rates and firing rates are measured
    by feeding the images one at a time (neuron state reset around each), so each layer's
    time-step count can be read from the leading dimension of its input.

    Args:
        model (nn.Module): Network mapping ``(1, C, H, W)`` to its output. Put in eval mode
            for the analysis and restored afterwards.
        images (Tensor): ``(N, C, H, W)`` images, the size the estimate is stated for; moved to the
            device of ``model``'s parameters (a CUDA study measures a CUDA network).
        precision (str | None): None: every layer at its own precision, read from the network (module
            docstring). A what-if override costing every operation at one preset: ``'fp32'``, ``'fp16'``,
            ``'int8'``, ``'int4'`` (45 nm) or ``'custom'``.
        mac_pj (float | None), ac_pj (float | None): Energy per MAC / AC in pJ, overriding the what-if preset
            (``precision`` must be given).
        spiking (bool): True: layers whose inputs were spikes (binary, or the counts of a neuron
            declaring ``spike_levels``) cost SOPs (a layer that only ever received zeros counts as
            spike-fed, at cost 0). False: every layer costs MACs (an ANN teacher or ReLU twin,
            whatever its inputs look like).
        fold_batchnorm (bool): Treat batch normalization as folded, hence free.
        progress (str | None): Show a progress bar over the images with this label. Default: None.

    Returns:
        EnergyReport
    """
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f'images must be a non-empty (N, C, H, W) tensor, got '
                         f'{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}')
    if precision is None and (mac_pj is not None or ac_pj is not None):
        raise ValueError('mac_pj / ac_pj override a what-if preset: give precision too (e.g. precision="custom")')
    what_if = None if precision is None else energy_per_op(precision, mac_pj, ac_pj)
    act_bits = getattr(model, 'act_bits', None)
    network_mac_pj, network_ac_pj = what_if or energy_per_op('fp32' if act_bits is None else f'int{act_bits}')
    weight = next(itertools.chain(model.parameters(), model.buffers()), None)
    if weight is not None:
        images = images.to(weight.device)
    with evaluating(model):
        macs = count_macs(model, images[:1], fold_batchnorm=fold_batchnorm)
        with SynapticInputMonitor(model) as inputs, FiringRateMonitor(model) as neurons, \
                AdditionCounter(model) as additions:
            for image in tqdm(images, desc=progress, unit='image', disable=progress is None, leave=False):
                functional.reset_net(model)
                model(image[None])
    time_steps = getattr(model, 'T', None)

    num_images = images.shape[0]
    modules = dict(inputs.targets)
    layers = []
    for name in inputs.recorded():
        steps = inputs.leading[name] / num_images
        dense = float(macs.of(name))
        rate = inputs.input_rate(name)
        levels = inputs.spike_levels(name) if spiking else None
        spike_fed = levels is not None
        sops, layer_macs = (rate * dense, 0.0) if spike_fed else (0.0, dense)
        layer_mac_pj, layer_ac_pj = what_if or energy_per_op(layer_precision(modules[name], spike_fed))
        layers.append(LayerEnergy(name=name, type=type(modules[name]).__name__, steps=steps,
                                  macs_per_step=dense / steps, input_rate=rate, spike_fed=spike_fed, sops=sops,
                                  macs=layer_macs, energy_pj=sops * layer_ac_pj + layer_macs * layer_mac_pj,
                                  parameters=sum(p.numel() for p in modules[name].parameters()),
                                  input_elements=inputs.elements[name] / num_images,
                                  output_elements=inputs.output_elements[name] / num_images,
                                  spike_levels=levels,
                                  precision=precision or layer_precision(modules[name], spike_fed),
                                  weight_bits=weight_bits_of(modules[name]), input_bits=input_bits_of(modules[name]),
                                  output_bits=act_bits))
    return EnergyReport(image_size=tuple(images.shape[-2:]), num_images=num_images, time_steps=time_steps,
                        precision='per layer' if precision is None else f'{precision} (what-if)',
                        mac_pj=network_mac_pj, ac_pj=network_ac_pj,
                        params=sum(p.numel() for p in model.parameters()), layers=layers,
                        other_macs={op: float(count) for op, count in macs.outside(inputs.recorded()).items()},
                        neuron_rates=neurons.rates(),
                        neuron_elements={name: count / num_images for name, count in neurons.counts().items()},
                        neuron_steps={name: steps / num_images for name, steps in neurons.steps().items()},
                        additions=additions.count / num_images)

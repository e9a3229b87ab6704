"""Memory-traffic energy of one image: moving weights, activations and membrane potentials.

The model, per image, for every conv / linear layer that ran ``s`` time steps:

* weights: every step reads the layer's weights and bias once (``s x`` its parameters);
* activations: the layer reads its input and writes its output once; the input of a spike-fed
  layer of a spiking network takes, under ``spike_bits``, ``ceil(log2(D + 1))`` bits per entry
  for spike counts in ``[0, D]`` (1 bit for binary spikes, 3 for D = 4, 4 for D = 8), a full
  value otherwise;
* membranes: a spiking neuron that runs ``s`` steps carries its membrane potential from each
  step to the next, ``s - 1`` times: written after every step but the last, read before every
  step but the first, ``2 (s - 1)`` values per neuron (none at ``s = 1``, binary or not),
  unless ``local_membranes`` (neuromorphic cores keep the state next to the neuron).

Every value moves at its real width: a float weight, activation or membrane value takes ``bytes_per_value`` (4:
fp32); a layer's fake-quantized weights (:mod:`~basicsr_snn.archs.quantization`) take their bits (int8: 1 byte),
a fake-quantized analog input its bits, and the outputs of a network with quantized activations its ``act_bits``.
Spike counts under ``gpu`` take a full value in a float network and 1 byte in one with quantized weights.
Energy = bytes x ``pj_per_byte`` (spikingjelly's
``SimpleEnergyCostConfig`` figure, 24.96 pJ per byte). What lies between two synaptic layers
(norms, neuron inputs and spikes, attention gates, additions) is taken as fused with them and
moves nothing of its own; so does an ANN's activation function.

Two named sets of assumptions (:data:`MEMORY_ASSUMPTIONS`):

* ``gpu``: spikes and counts stored as full fp32 values, membranes written back between steps
  (what a GPU or CPU implementation does);
* ``neuromorphic``: spikes and counts stored as bits, membranes kept local.
"""
from dataclasses import asdict, dataclass

from spikingjelly.activation_based.op_counter import SimpleEnergyCostConfig

BITS_PER_BYTE = 8


@dataclass(frozen=True)
class MemoryAssumptions:
    """How the memory traffic of one image is counted (see the module docstring).

    Attributes:
        spike_bits (bool): spike inputs with counts in ``[0, D]`` take ``ceil(log2(D + 1))`` bits per entry
            (1 for binary spikes; else ``bytes_per_value``).
        local_membranes (bool): membrane potentials stay in the neuron (no traffic).
        bytes_per_value (float): bytes of a weight, an analog activation or a membrane value.
        pj_per_byte (float): energy of moving one byte, in pJ.
    """
    spike_bits: bool
    local_membranes: bool
    bytes_per_value: float = 4.
    pj_per_byte: float = SimpleEnergyCostConfig.fp32().e_memory_pj_per_byte

    def describe(self) -> str:
        spikes = ('spikes as bits (counts in [0, D] as ceil(log2(D + 1)) bits)' if self.spike_bits
                  else f'spikes as {self.bytes_per_value:g}-byte values (1 byte with quantized weights)')
        membranes = 'membranes local' if self.local_membranes else 'membranes written and read between steps'
        return f'{spikes}, quantized values at their bits, {membranes}, {self.pj_per_byte:g} pJ/byte'


MEMORY_ASSUMPTIONS = {
    'gpu': MemoryAssumptions(spike_bits=False, local_membranes=False),
    'neuromorphic': MemoryAssumptions(spike_bits=True, local_membranes=True),
}


@dataclass(frozen=True)
class MemoryTraffic:
    """Bytes moved per image, by kind, and their energy."""
    weight_bytes: float
    activation_bytes: float
    membrane_bytes: float
    pj_per_byte: float

    @property
    def total_bytes(self) -> float:
        return self.weight_bytes + self.activation_bytes + self.membrane_bytes

    @property
    def energy_pj(self) -> float:
        return self.total_bytes * self.pj_per_byte

    def to_dict(self) -> dict:
        return dict(asdict(self), total_bytes=self.total_bytes, memory_pj=self.energy_pj)


def spike_bits(spike_levels: int) -> int:
    """Bits of one spike count in ``[0, D]``: ``ceil(log2(D + 1))``."""
    return int(spike_levels).bit_length()


def memory_traffic(layers, neuron_elements: dict[str, float], neuron_steps: dict[str, float],
                   assumptions: MemoryAssumptions) -> MemoryTraffic:
    """The traffic of one image.

    Args:
        layers (list[LayerEnergy]): per-layer records of :func:`~basicsr_snn.analysis.analyse_energy`
            (``steps``, ``parameters``, ``input_elements``, ``output_elements``, ``spike_fed``,
            ``spike_levels``, ``weight_bits``, ``input_bits``, ``output_bits``).
        neuron_elements (dict[str, float]): per spiking neuron module, its output entries per
            image over all steps.
        neuron_steps (dict[str, float]): per spiking neuron module, the time steps it ran per image.
        assumptions (MemoryAssumptions): what is stored how.
    """
    value = assumptions.bytes_per_value

    def width(bits):
        return value if bits is None else bits / BITS_PER_BYTE

    def input_bytes(layer):
        if layer.spike_fed and assumptions.spike_bits:
            return spike_bits(layer.spike_levels) / BITS_PER_BYTE
        if layer.spike_fed:
            return value if layer.weight_bits is None else 1
        return width(layer.input_bits)

    weights = sum(layer.steps * layer.parameters * width(layer.weight_bits) for layer in layers)
    activations = sum(layer.input_elements * input_bytes(layer) + layer.output_elements * width(layer.output_bits)
                      for layer in layers)
    carried = sum(elements * (neuron_steps[name] - 1) / neuron_steps[name]
                  for name, elements in neuron_elements.items())
    membranes = 0. if assumptions.local_membranes else 2 * carried * value
    return MemoryTraffic(weights, activations, membranes, assumptions.pj_per_byte)

"""Firing rates, MAC / SOP counts, compute- and memory-energy estimates (conventions: ``energy.py``, ``memory.py``).

* :func:`analyse_energy` -> :class:`EnergyReport`: per-layer MACs (mmengine), input spike
  rates (forward pre-hooks), SOPs and energy per image for a spiking network, its ReLU twin
  or an ANN teacher, with 45 nm presets (:data:`ENERGY_PRESETS_45NM`).
* :meth:`EnergyReport.memory`: memory traffic under :data:`MEMORY_ASSUMPTIONS` (``gpu``,
  ``neuromorphic``); :func:`spikingjelly_estimates`: spikingjelly's own estimators beside ours.
* :data:`ENERGY_MEASURES` / :func:`energy_measures`: the headline measures of a network (compute,
  total per memory assumption set); :func:`summary_table`, :func:`estimates_table`, :func:`ratios`:
  the energy report's tables and student ratios (``energy_table.py``).
* :class:`FiringRateMonitor`: cheap per-neuron-module firing rates during a normal forward,
  aggregated per level with :meth:`FiringRateMonitor.rates_by_level` (for validation logs).
* :func:`calibrate_batchnorm`: batch-norm statistics from real images, for untrained networks.
"""
from basicsr_snn.analysis.calibration import calibrate_batchnorm
from basicsr_snn.analysis.energy import (ENERGY_PRESETS_45NM, MEMORY_NOTE, EnergyReport, LayerEnergy, analyse_energy,
                                         energy_per_op, format_count, format_energy)
from basicsr_snn.analysis.energy_table import (ENERGY_MEASURES, AnalysedNetwork, energy_measures, estimates_table,
                                               ratios, summary_table)
from basicsr_snn.analysis.firing_rate import (SPIKING_NEURON_TYPES, SYNAPTIC_LAYER_TYPES, FiringRateMonitor,
                                              SynapticInputMonitor, aggregate_by_level, spike_levels_of)
from basicsr_snn.analysis.macs import MacCount, count_macs
from basicsr_snn.analysis.memory import MEMORY_ASSUMPTIONS, MemoryAssumptions, MemoryTraffic, memory_traffic
from basicsr_snn.analysis.spikingjelly_estimates import spikingjelly_estimates

__all__ = [
    'calibrate_batchnorm', 'ENERGY_PRESETS_45NM', 'MEMORY_NOTE', 'EnergyReport', 'LayerEnergy', 'analyse_energy',
    'energy_per_op', 'format_count', 'format_energy', 'ENERGY_MEASURES', 'AnalysedNetwork', 'energy_measures',
    'estimates_table', 'ratios', 'summary_table', 'SPIKING_NEURON_TYPES', 'SYNAPTIC_LAYER_TYPES',
    'FiringRateMonitor', 'SynapticInputMonitor', 'aggregate_by_level', 'spike_levels_of', 'MacCount', 'count_macs',
    'MEMORY_ASSUMPTIONS', 'MemoryAssumptions', 'MemoryTraffic', 'memory_traffic', 'spikingjelly_estimates'
]

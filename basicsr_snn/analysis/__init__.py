"""Firing rates, MAC / SOP counts and compute-energy estimates (the convention: ``energy.py``).

* :func:`analyse_energy` -> :class:`EnergyReport`: per-layer MACs (mmengine), input spike
  rates (forward pre-hooks), SOPs and energy per image for a spiking network, its ReLU twin
  or an ANN teacher, with 45 nm presets (:data:`ENERGY_PRESETS_45NM`).
* :class:`FiringRateMonitor`: cheap per-neuron-module firing rates during a normal forward,
  aggregated per level with :meth:`FiringRateMonitor.rates_by_level` (for validation logs).
* :func:`calibrate_batchnorm`: batch-norm statistics from real images, for untrained networks.
"""
from basicsr_snn.analysis.calibration import calibrate_batchnorm
from basicsr_snn.analysis.energy import (ENERGY_PRESETS_45NM, MEMORY_NOTE, EnergyReport, LayerEnergy, analyse_energy,
                                         energy_per_op, format_count, format_energy)
from basicsr_snn.analysis.firing_rate import (SPIKING_NEURON_TYPES, SYNAPTIC_LAYER_TYPES, FiringRateMonitor,
                                              SynapticInputMonitor, aggregate_by_level)
from basicsr_snn.analysis.macs import MacCount, count_macs

__all__ = [
    'calibrate_batchnorm', 'ENERGY_PRESETS_45NM', 'MEMORY_NOTE', 'EnergyReport', 'LayerEnergy', 'analyse_energy',
    'energy_per_op', 'format_count', 'format_energy', 'SPIKING_NEURON_TYPES', 'SYNAPTIC_LAYER_TYPES',
    'FiringRateMonitor', 'SynapticInputMonitor', 'aggregate_by_level', 'MacCount', 'count_macs'
]

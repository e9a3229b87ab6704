"""spikingjelly 2.0's energy estimators, run beside ours for the same network and image.

* ``spikingjelly simple``: ``estimate_simple_energy`` (runtime MACs and ACs at 45 nm, plus
  parameter reads per synaptic use and membrane-state reads and writes per step, 24.96 pJ/byte);
  reported as its compute part and as its total with memory.
* ``spikingjelly lemaire``: ``estimate_lemaire_energy`` (Lemaire et al. 2022, an analytical model of
  operations and SRAM accesses); it refuses modules its formulas do not cover (e.g. threshold-
  dependent batch norm, transposed convolutions), and the refusal is reported as the reason.

Each estimate is ``{'compute_pj', 'memory_pj', 'total_pj', 'model'}``, or ``{'unavailable': reason,
'model'}`` when the estimator cannot run on the network.
"""
from collections.abc import Callable

import torch
from spikingjelly.activation_based.op_counter import (SimpleEnergyConfig, SimpleEnergyCostConfig,
                                                      estimate_lemaire_energy, estimate_simple_energy)

from basicsr_snn.utils.hooks import evaluating

SIMPLE_MODEL = ('every MAC and AC the operators run, batch norms and element-wise additions included (45 nm); '
                'memory: each synaptic use reads its weight, neurons read and write their state every step')
LEMAIRE_MODEL = 'Lemaire et al. 2022: operations and SRAM accesses of conv / linear layers and IF / LIF neurons'


def _simple(model, image, cost):
    report = estimate_simple_energy(model, image, config=SimpleEnergyConfig(cost_config=cost))
    warnings = {'warnings': report.warnings} if report.warnings else {}
    return [('spikingjelly simple (compute)', {'compute_pj': report.energy_compute_pj, 'memory_pj': None,
                                               'total_pj': report.energy_compute_pj, 'model': SIMPLE_MODEL,
                                               **warnings}),
            ('spikingjelly simple (+ memory)', {'compute_pj': report.energy_compute_pj,
                                                'memory_pj': report.energy_memory_pj,
                                                'total_pj': report.energy_total_pj, 'model': SIMPLE_MODEL,
                                                **warnings})]


def _lemaire(model, image, _cost):
    report = estimate_lemaire_energy(model, image)
    parts = report.breakdown_pj
    return [('spikingjelly lemaire', {'compute_pj': parts['ops_pj'] + parts['addressing_pj'],
                                      'memory_pj': parts['memory_pj'], 'total_pj': report.total_pj,
                                      'model': LEMAIRE_MODEL})]


ESTIMATORS: dict[str, tuple[Callable, str]] = {
    'spikingjelly simple': (_simple, SIMPLE_MODEL),
    'spikingjelly lemaire': (_lemaire, LEMAIRE_MODEL),
}


def spikingjelly_estimates(model: torch.nn.Module, image: torch.Tensor, mac_pj: float, ac_pj: float) -> dict[str, dict]:
    """Every estimator of :data:`ESTIMATORS` on ``model`` and one ``(1, C, H, W)`` image.

    ``mac_pj`` / ``ac_pj`` are passed to the estimators that take them (the same preset as ours),
    with spikingjelly's memory cost per byte. An estimator that raises is reported with its
    message as the reason, never silently dropped.
    """
    cost = SimpleEnergyCostConfig(e_mac_pj=mac_pj, e_ac_pj=ac_pj)
    estimates = {}
    for name, (estimate, model_note) in ESTIMATORS.items():
        try:
            with evaluating(model):
                estimates.update(estimate(model, image, cost))
        except Exception as error:  # noqa: BLE001  (any refusal of a third-party estimator is reported)
            estimates[name] = {'unavailable': f'{type(error).__name__}: {error}', 'model': model_note}
    return estimates

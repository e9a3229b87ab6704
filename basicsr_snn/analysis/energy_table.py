"""The headline energy measures of analysed networks, their tables and their ratios.

Shared by ``scripts/energy_report.py`` (a student against its teacher and ReLU twin) and the Pareto
sweep (:mod:`basicsr_snn.benchmarks.pareto`), which read the same three measures per network:
compute energy, and compute + memory energy under each named memory assumption set
(:data:`~.memory.MEMORY_ASSUMPTIONS`).
"""
import functools
import math
from typing import NamedTuple

from basicsr_snn.analysis.energy import EnergyReport, format_count, format_energy
from basicsr_snn.analysis.memory import MEMORY_ASSUMPTIONS

#: each measure's key path in :meth:`EnergyReport.to_dict` (and in any record that keeps its
#: ``compute_pj`` and ``memory``)
ENERGY_MEASURES = {'compute': ('compute_pj', ),
                   **{f'total {name}': ('memory', name, 'total_pj') for name in MEMORY_ASSUMPTIONS}}


class AnalysedNetwork(NamedTuple):
    """One network of a report: its arch options, its :class:`EnergyReport`, spikingjelly's estimates
    (:func:`~.spikingjelly_estimates.spikingjelly_estimates`; empty when not run)."""
    arch: dict
    report: EnergyReport
    estimates: dict


def energy_measures(record: dict) -> dict[str, float]:
    """``{measure: pJ per image}`` of :data:`ENERGY_MEASURES` from a record of :meth:`EnergyReport.to_dict`."""
    return {measure: functools.reduce(dict.get, keys, record) for measure, keys in ENERGY_MEASURES.items()}


def ratios(networks: dict[str, AnalysedNetwork]) -> dict[str, dict[str, float]]:
    """``{'student/<role>': ratios}`` for every network but the student: the student's compute energy
    (``energy``), total energy under each memory assumption set (``total_<name>``) and parameters over
    the other network's, per image."""
    keys = {measure: 'energy' if measure == 'compute' else measure.replace(' ', '_') for measure in ENERGY_MEASURES}
    student = networks['student'].report
    student_measures = energy_measures(student.to_dict())
    result = {}
    for role, network in networks.items():
        if role == 'student':
            continue
        measures = energy_measures(network.report.to_dict())
        result[f'student/{role}'] = {**{keys[measure]: student_measures[measure] / measures[measure]
                                        for measure in ENERGY_MEASURES},
                                     'params': student.params / network.report.params}
    return result


def summary_table(networks: dict[str, AnalysedNetwork]) -> str:
    """One row per network: parameters, MACs, SOPs, mean input spike rate, compute, memory and total energy
    under each memory assumption set; then what each set assumes."""
    memory_columns = ''.join(f' {"memory " + name:>19} {"total " + name:>18}' for name in MEMORY_ASSUMPTIONS)
    header = (f'{"network":<8} {"arch":<14} {"params":>8} {"MACs":>8} {"SOPs":>8} {"mean rate":>9} {"compute":>9}'
              + memory_columns)
    lines = [header, '-' * len(header)]
    for role, (arch, report, _) in networks.items():
        rate = '-' if math.isnan(report.mean_input_rate) else f'{report.mean_input_rate:.4f}'
        memory = ''.join(f' {format_energy(report.memory(name).energy_pj):>19} '
                         f'{format_energy(report.total_pj(name)):>18}' for name in MEMORY_ASSUMPTIONS)
        lines.append(f'{role:<8} {arch["type"]:<14} {format_count(report.params):>8} {format_count(report.macs):>8} '
                     f'{format_count(report.sops):>8} {rate:>9} {format_energy(report.energy_pj):>9}' + memory)
    lines += [f'memory {name}: {assumptions.describe()}' for name, assumptions in MEMORY_ASSUMPTIONS.items()]
    return '\n'.join(lines)


def estimates_table(networks: dict[str, AnalysedNetwork]) -> str:
    """spikingjelly's estimators beside ours, one row per network and estimator."""
    header = f'{"network":<8} {"estimator":<31} {"compute":>9} {"memory":>9} {"total":>9}'
    lines, models = [header, '-' * len(header)], {}
    for role, (_, report, estimates) in networks.items():
        lines.append(f'{role:<8} {"ours (gpu memory)":<31} {format_energy(report.energy_pj):>9} '
                     f'{format_energy(report.memory("gpu").energy_pj):>9} {format_energy(report.total_pj("gpu")):>9}')
        for name, estimate in estimates.items():
            models[name.split(' (')[0]] = estimate['model']
            if 'unavailable' in estimate:
                lines.append(f'{role:<8} {name:<31} unavailable: {estimate["unavailable"]}')
                continue
            memory = '-' if estimate['memory_pj'] is None else format_energy(estimate['memory_pj'])
            lines.append(f'{role:<8} {name:<31} {format_energy(estimate["compute_pj"]):>9} {memory:>9} '
                         f'{format_energy(estimate["total_pj"]):>9}')
    lines += [f'{name}: {model}' for name, model in models.items()]
    return '\n'.join(lines)

"""scripts/pareto.py: fine-tuned variants of a study's student, their PSNR and energy, the fronts."""
import json

import pytest

from basicsr_snn.benchmarks.pareto import Variant, pareto_front
from test_benchmarks import assert_png, run_script
from pipeline_utils import REPO_ROOT

PARETO = REPO_ROOT / 'scripts' / 'pareto.py'


def test_quick_sweep_writes_every_point_with_psnr_and_both_energies(tmp_path):
    out = tmp_path / 'pareto'
    first = run_script(PARETO, '--quick', '--out', out, '--variants', 'base', 'T2', 'rate1+vth0.3', 'T2+D4')
    summary = json.loads((out / 'pareto.json').read_text())
    assert set(summary['points']) == {'base', 'T2', 'rate1+vth0.3', 'T2+D4'}
    assert set(summary['references']) == {'teacher', 'twin'}
    for point in list(summary['points'].values()) + list(summary['references'].values()):
        assert 5 < point['psnr'] < 60
        energy = point['energy_pj']
        assert energy['compute'] > 0 and energy['total gpu'] > energy['compute']
        assert energy['total gpu'] >= energy['total neuromorphic'] > energy['compute']
    results = {name: json.loads((out / name / 'result.json').read_text()) for name in summary['points']}
    base = results['base']['network']  # the default base arm: ilif-t1d8.twin-init.s0
    assert (base['neuron'], base['spike_levels'], base['T']) == ('ilif', 8, 1) and results['T2']['network']['T'] == 2
    assert results['rate1+vth0.3']['rate_opt'] == {'target': 0.02, 'loss_weight': 1.0}
    assert results['rate1+vth0.3']['network']['v_threshold'] == 0.3
    multi_level = results['T2+D4']['network']
    assert (multi_level['neuron'], multi_level['spike_levels'], multi_level['T']) == ('ilif', 4, 2)
    assert 'l_rate' in results['rate1+vth0.3']['losses'] and 'l_rate' not in results['base']['losses']
    for measure, front in summary['fronts'].items():
        assert front and set(front) <= set(summary['points'])
    assert summary['target']['compute_limit_pj'] == pytest.approx(
        summary['references']['twin']['energy_pj']['compute'] / 10)
    assert_png(out / 'pareto.png')
    assert '| T2 |' in (out / 'pareto.md').read_text()
    assert 'fine-tuning' in first.stdout

    second = run_script(PARETO, '--quick', '--out', out, '--variants', 'base')
    assert 'finished earlier: skipped' in second.stdout and 'fine-tuning' not in second.stdout


def test_variant_names_and_the_front():
    assert Variant.parse('T2+rate0.1') == Variant('T2+rate0.1', T=2, rate_weight=0.1)
    assert Variant.parse('vth0.6').network({'T': 4, 'v_threshold': 0.15}) == {'T': 4, 'v_threshold': 0.6}
    assert Variant.parse('T1+D4') == Variant('T1+D4', T=1, spike_levels=4)
    assert Variant.parse('D8').network({'T': 1, 'neuron': 'lif'}) == {'T': 1, 'neuron': 'ilif', 'spike_levels': 8}
    assert Variant.parse('D2').network({'neuron': 'ilif', 'spike_levels': 4}) == {'neuron': 'ilif', 'spike_levels': 2}
    for bad in ('T0', 'rate', 'fast', 'T2+gamma1', 'D0', 'D2.5', 'd4'):
        with pytest.raises(ValueError, match='variant'):
            Variant.parse(bad)
    points = {name: {'psnr': psnr, 'energy_pj': {'compute': energy}}
              for name, psnr, energy in (('a', 28.0, 100), ('b', 27.0, 50), ('c', 26.5, 80), ('d', 28.0, 120))}
    assert pareto_front(points, 'compute') == ['b', 'a']

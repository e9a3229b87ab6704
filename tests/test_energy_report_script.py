"""scripts/energy_report.py end to end on tiny networks and images."""
import json

import cv2
import numpy as np
import pytest
import torch
import yaml

import basicsr_snn  # noqa: F401  (host-stack fixes, arch registration)
from basicsr_snn.archs.restormer_arch import RESTORMER_PRESETS
from basicsr_snn.archs.spikerir_arch import SpikerIR
from pipeline_utils import load_script


@pytest.fixture(scope='module')
def energy_report():
    return load_script('energy_report')


def test_report_from_options_file(energy_report, tmp_path, capsys):
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(images / name), rng.integers(0, 256, (40, 48), dtype=np.uint8))
    student_arch = {'type': 'SpikerIR', 'in_ch': 1, 'out_ch': 1, 'dim': 4, 'T': 2}
    checkpoint = tmp_path / 'net_g.pth'
    torch.save({'params': SpikerIR(**{k: v for k, v in student_arch.items() if k != 'type'}).state_dict()}, checkpoint)
    options = {
        'network_g': student_arch,
        'network_t': {'type': 'Restormer', 'inp_channels': 1, 'out_channels': 1, **RESTORMER_PRESETS['small']},
        'path': {'pretrain_network_g': str(checkpoint), 'pretrain_network_t': None},
    }
    opt_path = tmp_path / 'options.yml'
    opt_path.write_text(yaml.safe_dump(options))
    out = tmp_path / 'report' / 'energy.json'

    result = energy_report.main(['-opt', str(opt_path), '--images', str(images), '--size', '32', '32',
                                 '--precision', 'int8', '--calibrate-bn', '--out', str(out)])

    printed = capsys.readouterr().out
    assert 'memory gpu: spikes as 4-byte values' in printed and 'spikingjelly simple (+ memory)' in printed
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result, default=str))
    assert saved['image_size'] == [32, 32] and saved['images'] == ['a.png', 'b.png']
    networks = saved['networks']
    assert set(networks) == {'student', 'teacher', 'twin'}
    assert networks['twin']['arch'] == {'type': 'SpikerIRReLU', 'in_ch': 1, 'out_ch': 1, 'dim': 4}
    assert networks['student']['time_steps'] == 2 and networks['student']['checkpoint'] == str(checkpoint)
    assert networks['student']['sops'] > 0 and networks['student']['mac_pj'] == 0.23
    for role in ('teacher', 'twin'):
        assert networks[role]['sops'] == 0 and networks[role]['mean_input_rate'] is None
        ratio = saved['ratios'][f'student/{role}']['energy']
        assert ratio == pytest.approx(networks['student']['energy_pj'] / networks[role]['energy_pj'])
    for role, network in networks.items():
        assert network['compute_pj'] == network['energy_pj'] and network['memory_assumptions'] == 'gpu'
        assert network['total_pj'] == pytest.approx(network['compute_pj'] + network['memory_pj'])
        assert network['memory']['gpu']['memory_pj'] == network['memory_pj'] > 0
        assert network['memory']['neuromorphic']['memory_pj'] <= network['memory_pj']
        simple = network['estimates']['spikingjelly simple (+ memory)']
        assert simple['total_pj'] == pytest.approx(simple['compute_pj'] + simple['memory_pj'])
        lemaire = network['estimates']['spikingjelly lemaire']
        refused = 'LayerNorm' if role == 'teacher' else 'ThresholdDependentBatchNorm2d'
        assert f'Lemaire formulas do not support {refused}' in lemaire['unavailable']
    neuromorphic = {role: networks[role]['memory']['neuromorphic']['total_pj'] for role in ('student', 'twin')}
    assert saved['ratios']['student/twin']['total_neuromorphic'] == pytest.approx(
        neuromorphic['student'] / neuromorphic['twin'])
    assert saved['ratios']['student/teacher']['params'] == pytest.approx(
        networks['student']['params'] / networks['teacher']['params'])
    assert out.with_suffix('.png').stat().st_size > 0


def test_arch_option_must_be_a_typed_mapping(energy_report):
    assert energy_report.parse_arch('{type: SpikerIR, dim: 5}', '--student-arch') == {'type': 'SpikerIR', 'dim': 5}
    with pytest.raises(ValueError, match='--student-arch must be a mapping with a "type" key'):
        energy_report.parse_arch('[1, 2]', '--student-arch')

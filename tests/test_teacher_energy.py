"""The cost of the all-in-one teachers: FFT counting (mmengine counts no torch.fft) and energy_report.py."""
import json
import math

import pytest
import torch
import yaml

import basicsr_snn  # noqa: F401  (registers the archs)
from basicsr_snn.analysis import analyse_energy
from basicsr_snn.analysis.macs import count_macs
from basicsr_snn.archs.adair_arch import ADAIR_PRESETS, AdaIR
from basicsr_snn.archs.promptir_arch import PROMPTIR_PRESETS, PromptIR
from pipeline_utils import load_script


def hand_fft_macs(signals, points, real=False):
    """The stated convention: 5 N log2 N real flops per complex FFT of N points, 2 flops per MAC."""
    return signals * 5 * points * math.log2(points) / 2 / (2 if real else 1)


class Transforms(torch.nn.Module):

    def forward(self, x):
        spectrum = torch.fft.fft2(x, norm='forward')
        along_rows = torch.fft.ifft(spectrum, dim=2)
        half = torch.fft.rfft2(x)
        return along_rows.abs() + torch.fft.irfft2(half, s=x.shape[-2:])


def test_fft_count_follows_the_stated_convention():
    counted = count_macs(Transforms(), torch.rand(2, 3, 8, 16)).by_module['']
    assert counted['fft_fft2'] == pytest.approx(hand_fft_macs(2 * 3, 8 * 16))
    assert counted['fft_ifft'] == pytest.approx(hand_fft_macs(2 * 3 * 16, 8))
    assert counted['fft_rfft2'] == counted['fft_irfft2'] == pytest.approx(hand_fft_macs(2 * 3, 8 * 16, real=True))


def test_adair_energy_includes_its_ffts():
    model = AdaIR(**ADAIR_PRESETS['small'])
    report = analyse_energy(model, torch.rand(1, 3, 32, 32), spiking=False)
    d = ADAIR_PRESETS['small']['dim']
    # one forward FFT and two inverse ones (the two bands) per frequency block, on its embedded
    # image: fre1 8d channels at 4x4, fre2 4d at 8x8, fre3 2d at 16x16
    forward = sum(hand_fft_macs(channels, side * side) for channels, side in ((8 * d, 4), (4 * d, 8), (2 * d, 16)))
    assert report.other_macs['fft_fft2'] == pytest.approx(forward)
    assert report.other_macs['fft_ifft2'] == pytest.approx(2 * forward)
    assert report.macs == pytest.approx(sum(layer.macs for layer in report.layers) + sum(report.other_macs.values()))
    assert report.energy_pj == pytest.approx(report.macs * report.mac_pj + report.additions * report.ac_pj)


@pytest.fixture(scope='module')
def energy_report():
    return load_script('energy_report')


@pytest.mark.parametrize('arch, presets', [('PromptIR', PROMPTIR_PRESETS), ('AdaIR', ADAIR_PRESETS)])
def test_energy_report_takes_an_all_in_one_teacher_from_its_lightning_checkpoint(energy_report, tmp_path, arch,
                                                                                 presets):
    teacher = {'PromptIR': PromptIR, 'AdaIR': AdaIR}[arch](**presets['small'])
    checkpoint = tmp_path / 'teacher.ckpt'
    torch.save({'state_dict': {f'net.{key}': value for key, value in teacher.state_dict().items()}, 'epoch': 1},
               checkpoint)
    options = {
        'network_g': {'type': 'SpikerIR', 'in_ch': 3, 'out_ch': 3, 'dim': 4, 'T': 1},
        'network_t': {'type': arch, **presets['small']},
        'path': {'pretrain_network_t': str(checkpoint), 'param_key_t': 'state_dict', 'strip_prefix_t': 'net.'},
    }
    opt_path = tmp_path / 'options.yml'
    opt_path.write_text(yaml.safe_dump(options))
    out = tmp_path / 'energy.json'
    energy_report.main(['-opt', str(opt_path), '--size', '16', '16', '--num-images', '1', '--no-twin',
                        '--no-spikingjelly', '--out', str(out)])
    network = json.loads(out.read_text())['networks']['teacher']
    assert network['arch']['type'] == arch and network['params'] == sum(p.numel() for p in teacher.parameters())
    assert network['sops'] == 0 and network['macs'] > 0
    assert ('fft_fft2' in network['other_macs']) == (arch == 'AdaIR')

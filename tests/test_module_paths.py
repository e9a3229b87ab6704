"""list_module_paths and scripts/list_modules.py: module paths with their output shapes."""
import sys

import pytest
import torch
import yaml

import basicsr_snn  # noqa: F401  (registers the archs)
from basicsr_snn.archs.restormer_arch import RESTORMER_PRESETS, Restormer
from basicsr_snn.archs.spikerir_arch import SpikerIR
from basicsr_snn.utils.module_paths import format_module_table, list_module_paths
from pipeline_utils import load_script


def test_spikerir_levels_in_execution_order_with_multi_step_shapes():
    model = SpikerIR(in_ch=1, out_ch=1, dim=4, T=2)
    rows = list_module_paths(model, (1, 1, 17, 23), max_depth=1)
    paths = [path for path, _, _ in rows]
    assert paths == [
        'embed', 'encoder1', 'down1', 'encoder2', 'down2', 'encoder3', 'down3', 'latent', 'up3', 'skip_add',
        'decoder3', 'up2', 'decoder2', 'up1', 'decoder1', 'head'
    ]  # skip_add (the three encoder-decoder skips) is listed at its first call
    shapes = {path: shape for path, _, shape in rows}
    assert shapes['embed'] == (1, 1, 4, 24, 24)  # direct encoding: computed once, broadcast over T
    assert shapes['encoder1'] == (2, 1, 4, 24, 24)
    assert shapes['latent'] == (2, 1, 32, 3, 3)
    assert shapes['decoder2'] == (2, 1, 8, 12, 12)
    assert shapes['head'] == (1, 1, 24, 24)
    assert dict((path, kind) for path, kind, _ in rows)['down1'] == 'SpikingDownsample'


def test_every_path_resolves_and_the_model_is_left_as_it_was():
    model = SpikerIR(in_ch=1, out_ch=1, dim=4, T=2).train()
    rows = list_module_paths(model, torch.rand(1, 1, 16, 16))
    assert model.training
    assert not any(module._forward_hooks for module in model.modules())
    assert len(rows) > 60
    for path, type_name, shape in rows:
        assert type(model.get_submodule(path)).__name__ == type_name
        assert isinstance(shape, tuple)
    assert ('encoder1.0.neuron1', 'ILIFNode', (2, 1, 4, 16, 16)) in rows  # the default neuron


def test_restormer_decoder_hint_points():
    model = Restormer(inp_channels=1, out_channels=1, **RESTORMER_PRESETS['small'])
    shapes = {path: shape for path, _, shape in list_module_paths(model, (2, 1, 17, 23), max_depth=1)}
    assert shapes['decoder_level3'] == (2, 32, 6, 6)
    assert shapes['decoder_level2'] == (2, 16, 12, 12)
    assert shapes['decoder_level1'] == (2, 16, 24, 24)
    assert shapes['output'] == (2, 1, 24, 24)


def test_table_lists_every_row():
    rows = [('a', 'Conv2d', (1, 2, 3, 4)), ('a.long_name', 'ReLU', (1, ))]
    lines = format_module_table(rows).splitlines()
    assert lines[0].split() == ['path', 'type', 'output', 'shape']
    assert lines[2].split()[:2] == ['a.long_name', 'ReLU']
    assert len(lines) == 3


@pytest.fixture
def list_modules_script(monkeypatch):
    return load_script('list_modules')


def run_script(script, monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, 'argv', ['list_modules.py', *args])
    script.main()
    return capsys.readouterr().out


def test_script_with_arch_and_options(list_modules_script, monkeypatch, capsys):
    out = run_script(list_modules_script, monkeypatch, capsys, '--arch', 'SpikerIR', '--set', 'in_ch=1', 'out_ch=1',
                     'dim=4', 'T=3', 'enc_blocks=[1,1,2]', '--size', '16', '24', '--depth', '1')
    lines = out.strip().splitlines()
    assert len(lines) == 17
    assert next(line for line in lines
                if line.startswith('encoder3')).split() == ['encoder3', 'SpikingLevel', '(3,', '1,', '16,', '4,', '6)']


def test_script_with_an_options_file(list_modules_script, monkeypatch, capsys, tmp_path):
    options = tmp_path / 'options.yml'
    options.write_text(
        yaml.safe_dump(
            {'network_t': {
                'type': 'Restormer',
                'inp_channels': 1,
                'out_channels': 1,
                **RESTORMER_PRESETS['small']
            }}))
    out = run_script(list_modules_script, monkeypatch, capsys, '-opt', str(options), '--network', 'network_t', '--size',
                     '8', '8', '--depth', '1')
    assert 'decoder_level1' in out and '(1, 16, 8, 8)' in out

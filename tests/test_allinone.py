"""All-in-one distillation: a spiking student from a tiny PromptIR or AdaIR, one validation line per degradation."""
import copy
import re

import pytest
import torch
import yaml
from basicsr.utils.options import ordered_yaml

from pipeline_utils import REPO_ROOT, TRAIN_SCRIPT, read_train_log, run_entry_point
from snn_options import build_model, captured_log, in_process_options, training_batch
from test_options import load_options, point_datasets_at_tiny_data, save_random_weights

DEGRADATIONS = ('noise15', 'noise25', 'noise50', 'rain', 'haze')
DEMO_DEGRADATIONS = ('noise15', 'noise25', 'noise50', 'synthetic-rain', 'synthetic-haze')
TEACHER_DIM = 8  # the small presets of both archs (options/demo/)
# The hint points of the PromptIR and AdaIR docstrings at a 32x32 probe, dim d = 8:
# decoder_level3 (B, 4d, H/4, W/4), decoder_level2 (B, 2d, H/2, W/2), decoder_level1 (B, 2d, H, W).
DOCUMENTED_HINT_SHAPES = {'dec3': ('decoder_level3', (1, 4 * TEACHER_DIM, 8, 8)),
                          'dec2': ('decoder_level2', (1, 2 * TEACHER_DIM, 16, 16)),
                          'dec1': ('decoder_level1', (1, 2 * TEACHER_DIM, 32, 32))}


def tiny_options(option_file, tmp_path, networks_from=None):
    """``option_file`` on tiny data with a randomly initialised teacher saved as its ``path`` options ask
    (key, prefix); ``networks_from``: another file whose (small) networks replace the file's."""
    options = load_options(option_file)
    if networks_from is not None:
        small = load_options(networks_from)
        options['network_t'], options['network_g'] = small['network_t'], small['network_g']
    point_datasets_at_tiny_data(options, tmp_path)
    options['datasets']['train'].update(gt_size=32, num_samples=9)  # weights 1:1:1:3:3
    options['path']['pretrain_network_t'] = save_random_weights(
        options['network_t'], tmp_path / 'teacher.pth', options['path'].get('param_key_t', 'params'),
        options['path'].get('strip_prefix_t') or '')
    return options


@pytest.mark.parametrize('arch', ['promptir', 'adair'])
def test_distillation_from_a_tiny_allinone_teacher_trains_with_its_decoder_hints(arch, tmp_path):
    options = tiny_options(REPO_ROOT / 'options' / 'demo' / f'distill_allinone_{arch}.yml', tmp_path)
    options = in_process_options(tmp_path, options)
    with captured_log() as messages:
        model = build_model(options)
    for name, (teacher_path, shape) in DOCUMENTED_HINT_SHAPES.items():
        assert any(re.match(rf'Hint {name}: student \S+ \(.*\) -> teacher {teacher_path} {re.escape(str(shape))}', m)
                   for m in messages), (name, messages)
        assert model.net_adapters[name].proj.out_channels == shape[1]

    batch = training_batch(options, size=4)
    assert set(batch['degradation']) <= set(DEMO_DEGRADATIONS)
    student_before = copy.deepcopy(model.net_g.state_dict())
    for current_iter in range(1, 4):
        model.update_learning_rate(current_iter)
        model.feed_data(batch)
        model.optimize_parameters(current_iter)
        hint_losses = torch.tensor([model.log_dict[f'l_hint_{name}'] for name in DOCUMENTED_HINT_SHAPES])
        assert torch.isfinite(hint_losses).all() and (hint_losses > 0).all()
    assert any(not torch.equal(value, student_before[key]) for key, value in model.net_g.state_dict().items())


def test_allinone_distillation_file_trains_and_validates_each_degradation(tmp_path):
    # the authors' AdaIR checkpoint layout ({'state_dict': {'net.<key>': ...}}), at the small size
    options = tiny_options(REPO_ROOT / 'options' / 'distill_allinone_adair.yml', tmp_path,
                           networks_from=REPO_ROOT / 'options' / 'demo' / 'distill_allinone_adair.yml')
    assert options['path']['strip_prefix_t'] == 'net.'
    options['train'].update(total_iter=2, ema_decay=0)
    options['train']['scheduler']['periods'] = [2]
    options['val']['val_freq'] = 2
    options['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    opt_file = tmp_path / 'allinone.yml'
    opt_file.write_text(yaml.dump(options, Dumper=ordered_yaml()[1]))

    run_entry_point(TRAIN_SCRIPT, opt_file, cwd=tmp_path)
    log = read_train_log(tmp_path / 'experiments' / 'distill_allinone_adair')
    assert re.findall(r'iter:\s+(\d+), lr', log) == ['1', '2']
    assert all(f'l_hint_{name}' in log for name in DOCUMENTED_HINT_SHAPES)
    validated = re.findall(r'Validation (\S+)\n\s+# psnr: +\d+\.\d+', log)
    assert sorted(set(validated)) == sorted(DEGRADATIONS)

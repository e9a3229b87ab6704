"""A spiking student distilled from a tiny PromptIR and a tiny AdaIR, hints at their documented decoder levels."""
import copy

import pytest
import torch

from basicsr_snn.archs.adair_arch import ADAIR_PRESETS
from basicsr_snn.archs.promptir_arch import PROMPTIR_PRESETS
from pipeline_utils import write_paired_folder
from snn_options import build_model, in_process_options, training_batch, training_options

TEACHERS = {'PromptIR': PROMPTIR_PRESETS['small'], 'AdaIR': ADAIR_PRESETS['small']}
# student level -> teacher hint point (the docstrings' table)
HINTS = [{'name': 'dec3', 'student': 'decoder3', 'teacher': 'decoder_level3'},
         {'name': 'dec2', 'student': 'decoder2', 'teacher': 'decoder_level2'},
         {'name': 'dec1', 'student': 'decoder1', 'teacher': 'refinement'}]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_paired_folder(tmp_path_factory.mktemp('data'), count=2, size=16, channels=3)


@pytest.mark.parametrize('arch', sorted(TEACHERS))
def test_distillation_trains_with_hints_from_the_decoder_levels(tmp_path, data_root, arch):
    options = training_options(tmp_path, data_root, f'distill_{arch}', 'DistillSNNModel', teacher_path=None)
    options['network_t'] = {'type': arch, **copy.deepcopy(TEACHERS[arch])}
    options['path']['pretrain_network_t'] = None
    options['train']['distill'].update(hints=copy.deepcopy(HINTS), allow_random_teacher=True)
    options = in_process_options(tmp_path, options)
    model = build_model(options)
    adapters_before = {key: value.clone() for key, value in model.net_adapters.state_dict().items()}
    batch = training_batch(options)
    for current_iter in (1, 2):
        model.feed_data(batch)
        model.optimize_parameters(current_iter)

    assert all(model.log_dict[f'l_hint_{hint["name"]}'] > 0 for hint in HINTS)
    d = TEACHERS[arch]['dim']
    batch_size, _, height, width = batch['lq'].shape
    with torch.no_grad(), model.teacher_recorder:
        model.net_t(batch['lq'])
    shapes = {name: tuple(feature.shape) for name, feature in model.teacher_recorder.features.items()}
    assert shapes == {'dec3': (batch_size, 4 * d, height // 4, width // 4),
                      'dec2': (batch_size, 2 * d, height // 2, width // 2),
                      'dec1': (batch_size, 2 * d, height, width)}
    assert any(not torch.equal(value, adapters_before[key]) for key, value in model.net_adapters.state_dict().items())

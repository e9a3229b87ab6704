"""The authors' PyTorch Lightning checkpoints ({'state_dict': {'net.<name>': ...}, ...}) as teachers."""
import copy

import pytest
import torch

from basicsr_snn.archs.adair_arch import ADAIR_PRESETS
from basicsr_snn.archs.promptir_arch import PROMPTIR_PRESETS
from basicsr_snn.models.snn_model import build_network_from_options
from basicsr_snn.utils.checkpoint import load_weights
from pipeline_utils import write_paired_folder
from snn_options import build_model, in_process_options, training_options

TEACHERS = {
    'PromptIR': {'type': 'PromptIR', **PROMPTIR_PRESETS['small']},
    'AdaIR': {'type': 'AdaIR', **ADAIR_PRESETS['small']},
}


def build_teacher(arch, seed):
    torch.manual_seed(seed)
    return build_network_from_options({'network_t': copy.deepcopy(TEACHERS[arch])}, 'network_t')


def write_lightning_checkpoint(path, network, prefix='net.'):
    """The layout of a Lightning ``.ckpt`` whose LightningModule holds the arch as ``self.net``."""
    torch.save({'epoch': 149, 'global_step': 1000, 'pytorch-lightning_version': '2.0.0',
                'state_dict': {prefix + key: value for key, value in network.state_dict().items()},
                'optimizer_states': [], 'lr_schedulers': []}, path)
    return path


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_paired_folder(tmp_path_factory.mktemp('data'), count=2, size=16, channels=3)


@pytest.mark.parametrize('arch', sorted(TEACHERS))
def test_lightning_checkpoint_loads_strictly_into_the_teacher(tmp_path, arch):
    source = build_teacher(arch, seed=1)
    checkpoint = write_lightning_checkpoint(tmp_path / 'model.ckpt', source)
    teacher = build_teacher(arch, seed=2)
    report = load_weights(teacher, checkpoint, 'state_dict', strict=True, key_chosen=True, strip_prefix='net.')
    assert report.loaded == tuple(sorted(source.state_dict())) and not report.not_loaded
    x = torch.rand(1, 3, 12, 20)
    with torch.no_grad():
        torch.testing.assert_close(teacher.eval()(x), source.eval()(x), rtol=0, atol=0)


def distill_options(tmp_path, data_root, arch, checkpoint, **path):
    options = training_options(tmp_path, data_root, f'distill_{arch}', 'DistillSNNModel', teacher_path=checkpoint)
    options['network_t'] = copy.deepcopy(TEACHERS[arch])
    options['path'].update({'param_key_t': 'state_dict', **path})
    return in_process_options(tmp_path, options)


def test_distillation_reads_the_teacher_through_strip_prefix_t(tmp_path, data_root):
    source = build_teacher('PromptIR', seed=1)
    checkpoint = write_lightning_checkpoint(tmp_path / 'promptir.ckpt', source)
    model = build_model(distill_options(tmp_path, data_root, 'PromptIR', checkpoint, strip_prefix_t='net.'))
    loaded = model.net_t.state_dict()
    assert all(torch.equal(loaded[key].cpu(), value) for key, value in source.state_dict().items())


@pytest.mark.parametrize('path, message', [
    ({}, r"path\.pretrain_network_t: the keys of .*model\.ckpt \[state_dict\] do not match network_t \(AdaIR\): "
         r"keys start with 'net\.'; set path\.strip_prefix_t: net\.$"),
    ({'strip_prefix_t': 'model.'}, r"path\.strip_prefix_t: not every key of .*model\.ckpt \[state_dict\] starts with "
                                   r"'model\.'; keys start with 'net\.'; set path\.strip_prefix_t: net\.$"),
    ({'strip_prefix_t': ''}, r'path\.strip_prefix_t must be a non-empty string'),
    ({'param_key_t': 'params'}, r"path\.param_key_t: 'params' is not in .*a PyTorch Lightning checkpoint: set "
                                r"path\.param_key_t: state_dict"),
])
def test_a_missing_or_wrong_prefix_names_the_prefix_found(tmp_path, data_root, path, message):
    checkpoint = write_lightning_checkpoint(tmp_path / 'model.ckpt', build_teacher('AdaIR', seed=1))
    with pytest.raises(ValueError, match=message):
        build_model(distill_options(tmp_path, data_root, 'AdaIR', checkpoint, **path))


def test_a_prefix_that_would_not_help_is_not_suggested(tmp_path):
    teacher = build_teacher('AdaIR', seed=1)
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))  # keys '0.weight', '0.bias': no match either way
    checkpoint = write_lightning_checkpoint(tmp_path / 'other.ckpt', other)
    with pytest.raises(ValueError, match='no tensor of .* matches') as error:
        load_weights(teacher, checkpoint, 'state_dict', strict=False, key_chosen=True)
    assert 'strip_prefix' not in str(error.value)


def test_resume_keeps_the_teachers_prefix_and_drops_the_students(tmp_path, data_root):
    from basicsr_snn import pipeline
    from snn_options import STUDENT, training_batch
    teacher_checkpoint = write_lightning_checkpoint(tmp_path / 'promptir.ckpt', build_teacher('PromptIR', seed=1))
    torch.manual_seed(3)
    student = build_network_from_options({'network_g': copy.deepcopy(STUDENT)}, 'network_g')
    student_checkpoint = write_lightning_checkpoint(tmp_path / 'student.ckpt', student)
    options = distill_options(tmp_path, data_root, 'PromptIR', teacher_checkpoint, strip_prefix_t='net.',
                              pretrain_network_g=str(student_checkpoint), param_key_g='state_dict',
                              strip_prefix_g='net.')
    model = build_model(options)
    assert all(torch.equal(model.net_g.state_dict()[key], value) for key, value in student.state_dict().items())
    model.feed_data(training_batch(options))
    model.optimize_parameters(1)
    model.save(epoch=0, current_iter=1)

    resumed = copy.deepcopy(options)
    resumed['path']['resume_state'] = str(tmp_path / 'experiments' / 'distill_PromptIR' / 'training_states' / '1.state')
    pipeline.load_resume_state(resumed)
    assert resumed['path']['pretrain_network_g'].endswith('net_g_1.pth') and 'strip_prefix_g' not in resumed['path']
    assert resumed['path']['strip_prefix_t'] == 'net.' and resumed['path']['pretrain_network_t'] == str(
        teacher_checkpoint)
    trained = model.net_g.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in build_model(resumed).net_g.state_dict().items())


def test_a_checkpoint_with_objects_is_refused_with_the_command_that_keeps_its_weights(tmp_path):
    import argparse
    teacher = build_teacher('AdaIR', seed=1)
    checkpoint = tmp_path / 'with_hparams.ckpt'
    torch.save({'state_dict': {f'net.{key}': value for key, value in teacher.state_dict().items()},
                'hyper_parameters': argparse.Namespace(lr=2e-4)}, checkpoint)
    with pytest.raises(ValueError, match=r'path\.pretrain_network_t: .*with_hparams\.ckpt holds objects other than '
                                         r'tensors.*torch\.save\(\{.state_dict.: c\[.state_dict.\]\}'):
        load_weights(teacher, checkpoint, 'state_dict', key_chosen=True, strip_prefix='net.',
                     option_key='path.pretrain_network_t')

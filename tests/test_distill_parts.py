"""The distillation building blocks on their own: schedule, recorder, adapter, options, hint losses."""
import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from basicsr_snn.distill import (DistillOptions, DistillWeightSchedule, FeatureAdapter, FeatureRecorder, HintAdapters,
                                 build_comparison_loss)


@pytest.mark.parametrize('options, expected', [
    ({}, {1: 0.12, 500: 0.12}),
    ({'type': 'linear', 'gamma': 1.0, 'until_iter': 10}, {0: 1.0, 5: 0.5, 10: 0.0, 20: 0.0}),
    ({'type': 'linear', 'gamma': 1.0, 'end': 0.5}, {50: 0.75, 100: 0.5}),  # until_iter = total_iter = 100
    ({'type': 'cosine', 'gamma': 1.0, 'until_iter': 10}, {0: 1.0, 5: 0.5, 10: 0.0, 11: 0.0}),
    ({'type': 'step', 'gamma': 0.2, 'until_iter': 3}, {3: 0.2, 4: 0.0}),
])
def test_schedule_values(options, expected):
    schedule = DistillWeightSchedule.from_options(options, total_iter=100)
    assert {it: pytest.approx(schedule(it)) for it in expected} == expected


@pytest.mark.parametrize('options, message', [
    ({'type': 'exponential'},
     r"^train\.distill\.schedule\.type must be one of \('constant', 'linear', 'cosine', 'step'\)"),
    ({'type': 'step'}, r"^train\.distill\.schedule\.until_iter \(for type 'step'\) must be an integer >= 1"),
    ({'gamma': -1}, r'^train\.distill\.schedule\.gamma must be a number >= 0'),
    ({'until': 5}, r"^train\.distill\.schedule: unknown key\(s\) \['until'\]; valid keys"),
])
def test_schedule_errors_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):  # checked when the options are parsed, with the file's keys
        DistillOptions.from_train_options({'total_iter': 100, 'distill': {'output': {}, 'schedule': options}})
    component_message = message.replace(r'^train\.distill\.schedule\.', '^').replace(r'^train\.distill\.', '^')
    with pytest.raises(ValueError, match=component_message):  # the component alone
        DistillWeightSchedule.from_options(options, total_iter=100)


class TinySpiking(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(1, 2, 1, step_mode='m')
        self.lif = neuron.LIFNode(step_mode='m', v_threshold=0.5)

    def forward(self, x_seq):
        return self.lif(self.conv(x_seq))


def test_recorder_reduces_over_time_only_inside_the_block():
    net = TinySpiking()
    recorder = FeatureRecorder(net)
    recorder.add('rate', 'lif', reduce='mean')
    recorder.add('conv', 'conv', reduce='none')
    x_seq = torch.rand(3, 2, 1, 4, 4)
    with recorder:
        spikes = net(x_seq)
    assert torch.equal(recorder.features['rate'], spikes.mean(0))
    assert recorder.features['conv'].shape == (3, 2, 2, 4, 4)
    recorder.clear()
    functional.reset_net(net)
    net(x_seq)
    assert recorder.features == {}


def test_membrane_recording_keeps_the_graph():
    net = TinySpiking()
    recorder = FeatureRecorder(net)
    recorder.add('membrane', 'lif', reduce='membrane')
    assert net.lif.store_v_seq
    with recorder:
        net(torch.rand(3, 2, 1, 4, 4))
    membrane = recorder.features['membrane']
    assert membrane.shape == (2, 2, 4, 4)
    membrane.sum().backward()
    assert net.conv.weight.grad.abs().sum() > 0


def test_recorder_errors_name_the_option_and_valid_paths():
    recorder = FeatureRecorder(TinySpiking())
    with pytest.raises(ValueError, match=r"^TinySpiking has no module 'lfi'.*Did you mean \['lif'\]"
                       r".*Valid module paths: \['conv', 'lif', 'lif\.surrogate_function'\]"):
        recorder.add('x', 'lfi')
    with pytest.raises(ValueError, match=r"reduce: membrane needs a spiking neuron module, but 'conv' is a Conv2d"):
        recorder.add('x', 'conv', reduce='membrane')


def test_adapter_identity_conv_and_resize():
    identity = FeatureAdapter((2, 4, 8, 8), (2, 4, 8, 8))
    assert not list(identity.parameters())
    x = torch.rand(2, 4, 8, 8)
    assert torch.equal(identity(x, x.shape), x)

    projecting = FeatureAdapter((2, 4, 8, 8), (2, 16, 4, 4))
    assert projecting.proj.weight.shape == (16, 4, 1, 1)
    assert projecting(x, (2, 16, 4, 4)).shape == (2, 16, 4, 4)

    adapters = HintAdapters({'same': identity, 'wider': projecting})
    assert adapters.has_parameters() and not HintAdapters({'same': identity}).has_parameters()
    adapted = adapters({'same': x, 'wider': x}, {'same': x, 'wider': torch.zeros(2, 16, 4, 4)})
    assert adapted['wider'].shape == (2, 16, 4, 4)


@pytest.mark.parametrize('student, teacher, options, message', [
    ((2, 4, 8, 8), (1, 4, 8, 8), {}, r'cannot adapt the student feature of shape \(2, 4, 8, 8\) to the teacher feature '
     r'of shape \(1, 4, 8, 8\)'),
    ((2, 4, 8), (2, 4, 8, 8), {}, r'\(2, 4, 8\) to the teacher feature of shape \(2, 4, 8, 8\)'),
    ((2, 4, 8, 8), (2, 8, 8, 8), {'adapter': 'none'}, r'differ in channels; set adapter: conv1x1'),
    ((2, 4, 8, 8), (2, 4, 4, 4), {'resize': 'none'}, r'differ in size; set resize: bilinear'),
    ((2, 4, 8, 8), (2, 4, 8, 8), {'resize': 'linear'}, r"^resize must be one of"),
])
def test_unadaptable_shapes_name_both(student, teacher, options, message):
    with pytest.raises(ValueError, match=message):
        FeatureAdapter(student, teacher, **options)


def test_options_defaults_and_errors():
    parsed = DistillOptions.from_train_options({'distill': {'hints': [{'student': 'decoder1.0', 'teacher': 't'}]}})
    hint = parsed.hints[0]
    assert (hint.name, hint.loss, hint.weight, hint.reduce, hint.adapter, hint.resize) == (
        'decoder1_0', {'type': 'MSELoss', 'loss_weight': 1.0}, 1.0, 'mean', 'conv1x1', 'bilinear')
    assert parsed.output is None and not parsed.allow_random_teacher

    cases = [
        ({}, r'train\.distill is missing'),
        ({'distill': {}}, r'train\.distill distills nothing'),
        ({'distill': {'hints': [{'teacher': 't'}]}}, r'train\.distill\.hints\[0\]\.student is missing'),
        ({'distill': {'hints': [{'student': 's', 'teacher': 't', 'wieght': 1}]}},
         r"hints\[0\]: unknown key\(s\) \['wieght'\]"),
        ({'distill': {'hints': [{'student': 's', 'teacher': 't'}] * 2}}, r"names must be unique, repeated: \['s'\]"),
        ({'distill': {'output': {}, 'adapter': 'mlp'}}, r'train\.distill\.adapter must be one of'),
        ({'distill': {'hints': [{'student': 's', 'teacher': 't', 'reduce': 'max'}]}}, r'hints\[0\]\.reduce must be'),
    ]
    for train_opt, message in cases:
        with pytest.raises(ValueError, match=message):
            DistillOptions.from_train_options(train_opt)


def test_hint_loss_by_registered_type():
    assert build_comparison_loss(None)(torch.zeros(2), torch.ones(2)).item() == 1.0  # MSE
    l1 = build_comparison_loss({'type': 'L1Loss', 'loss_weight': 2.0})
    assert l1(torch.zeros(2), torch.full((2, ), 3.)).item() == 6.0
    with pytest.raises(ValueError, match=r"^type must name a registered loss, got 'MSE'.*'MSELoss'"):
        build_comparison_loss({'type': 'MSE'})
    with pytest.raises(ValueError, match=r'^cannot build L1Loss'):
        build_comparison_loss({'type': 'L1Loss', 'weight': 2})
    with pytest.raises(ValueError, match=r"^train\.distill\.hints\[0\]\.loss\.type must name a registered loss"):
        DistillOptions.from_train_options({'distill': {'hints': [{'student': 's', 'teacher': 't',
                                                                  'loss': {'type': 'MSE'}}]}})

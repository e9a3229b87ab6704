"""The distillation recipes: normalised hints, the cosine loss, a twin teacher, twin initialisation."""
import copy
import math

import pytest
import torch

import basicsr_snn  # noqa: F401  (registers the plugin)
from basicsr.losses import build_loss
from basicsr_snn.distill import DistillOptions, HintComparison, standardize_channels
from basicsr_snn.utils.checkpoint import load_weights
from snn_options import STUDENT, build_model, captured_log, in_process_options, training_options


def affine_per_channel(feature, generator):
    channels = feature.shape[1]
    scale = torch.rand(1, channels, 1, 1, generator=generator) * 3 + 0.2
    shift = torch.randn(1, channels, 1, 1, generator=generator)
    return feature * scale + shift


@pytest.mark.parametrize('loss', [{'type': 'MSELoss'}, {'type': 'L1Loss'}, {'type': 'CosineFeatureLoss'}])
def test_channel_normalised_hint_loss_ignores_per_channel_affine_rescaling(loss):
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 6, 8, 8, generator=generator), torch.randn(4, 6, 8, 8, generator=generator)
    compare = HintComparison(build_loss(loss), normalize='channel')
    plain = HintComparison(build_loss(loss))
    rescaled = affine_per_channel(student, generator)
    torch.testing.assert_close(compare(rescaled, teacher), compare(student, teacher), rtol=1e-4, atol=1e-5)
    assert not torch.isclose(plain(rescaled, teacher), plain(student, teacher))
    assert float(compare(teacher, teacher)) == pytest.approx(0, abs=1e-5)


def test_standardize_channels_gives_zero_mean_unit_variance():
    feature = torch.randn(3, 5, 7, 7) * torch.arange(1., 6.).view(1, 5, 1, 1) + 4
    standard = standardize_channels(feature)
    torch.testing.assert_close(standard.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(standard.var(dim=(0, 2, 3), unbiased=False), torch.ones(5), atol=1e-4, rtol=0)


def test_cosine_feature_loss_values():
    loss = build_loss({'type': 'CosineFeatureLoss', 'loss_weight': 2.0})
    x = torch.randn(2, 3, 4, 4)
    assert float(loss(x, 5 * x)) == pytest.approx(0, abs=1e-6)
    assert float(loss(x, -x)) == pytest.approx(4.0)  # weight 2 x distance 2
    with pytest.raises(ValueError, match='differ'):
        loss(x, x[:, :2])


@pytest.mark.parametrize('key, value, message', [
    ('normalize', 'batch', r"hints\[0\]\.normalize must be one of \('none', 'channel'\)"),
    ('teacher_reduce', 'membrane', r"hints\[0\]\.teacher_reduce must be one of \('none', 'mean'\)"),
])
def test_new_hint_keys_are_checked(key, value, message):
    with pytest.raises(ValueError, match=message):
        DistillOptions.from_train_options(
            {'distill': {'hints': [{'student': 'decoder1', 'teacher': 'decoder1', key: value}]}})


TWIN = dict(STUDENT, type='SpikerIRReLU', T=1)
ITERATIONS = 6  # training steps on one fixed batch, enough for the losses to fall
ALL_LEVELS = ('encoder1', 'encoder2', 'encoder3', 'latent', 'decoder3', 'decoder2', 'decoder1')


def save_network(network_opt, path, seed=0):
    from basicsr.archs import build_network
    torch.manual_seed(seed)
    network = build_network(copy.deepcopy(network_opt))
    torch.save({'params': network.state_dict()}, path)
    return network


def twin_teacher_options(tmp_path, data_root, twin_path, **hint):
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'twin_teacher', 'DistillSNNModel',
                                                            total_iter=3, teacher_path=twin_path))
    options['network_t'] = copy.deepcopy(TWIN)
    options['train']['distill'] = {'hints': [dict({'student': level, 'teacher': level, 'teacher_reduce': 'mean'},
                                                  **hint) for level in ALL_LEVELS],
                                   'schedule': {'type': 'constant', 'gamma': 1.0}}
    return options


def test_twin_teacher_needs_no_adapter_and_trains(tmp_path, data_root):
    twin_path = tmp_path / 'twin.pth'
    save_network(TWIN, twin_path)
    options = twin_teacher_options(tmp_path, data_root, twin_path)
    model = build_model(options)
    assert not model.adapters_have_parameters()
    teacher_before = {k: v.clone() for k, v in model.net_t.state_dict().items()}
    student_before = {k: v.clone() for k, v in model.net_g.named_parameters()}
    batch = {'lq': torch.rand(2, 3, 16, 16), 'gt': torch.rand(2, 3, 16, 16)}
    hint_losses = []
    for iteration in range(1, ITERATIONS + 1):
        model.feed_data(batch)
        model.optimize_parameters(iteration)
        hint_losses.append({level: model.log_dict[f'l_hint_{level}'] for level in ALL_LEVELS})
    assert all(math.isfinite(loss) and loss > 0 for loss in hint_losses[0].values())
    # on a fixed batch the student moves towards the teacher's features
    assert sum(hint_losses[-1].values()) < 0.9 * sum(hint_losses[0].values())
    assert all(not torch.equal(p, student_before[k]) for k, p in model.net_g.named_parameters() if 'conv' in k)
    assert all(torch.equal(v, teacher_before[k]) for k, v in model.net_t.state_dict().items())


def test_multi_step_teacher_without_teacher_reduce_is_named(tmp_path, data_root):
    twin_path = tmp_path / 'twin.pth'
    save_network(TWIN, twin_path)
    options = twin_teacher_options(tmp_path, data_root, twin_path)
    for hint in options['train']['distill']['hints']:
        hint.pop('teacher_reduce')
    with pytest.raises(ValueError, match=r'hints\[0\]: the teacher feature .* set teacher_reduce: mean'):
        build_model(options)


def test_twin_initialisation_loads_every_matching_tensor_and_names_the_rest(tmp_path, data_root):
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'twin_init', total_iter=2))
    options['network_g'] = dict(STUDENT, attention=True)  # temporal attention: T-dependent shapes
    options['path'].update(pretrain_network_g=str(tmp_path / 'twin.pth'), strict_load_g=False)
    twin_with_attention = save_network(dict(TWIN, attention=True), tmp_path / 'twin.pth', seed=3)
    with captured_log() as messages:
        model = build_model(options)
    student = model.get_bare_model(model.net_g).state_dict()
    twin_state = twin_with_attention.state_dict()
    skipped = sorted(k for k in twin_state if student[k].shape != twin_state[k].shape)
    assert skipped and all('attention' in k for k in skipped)
    for key, value in twin_state.items():
        if key not in skipped:
            assert torch.equal(student[key], value), key
    assert any(skipped[0] in message and 'shape differs' in message for message in messages)
    batch = {'lq': torch.rand(2, 3, 16, 16), 'gt': torch.rand(2, 3, 16, 16)}
    pixel_losses = []
    for iteration in range(1, ITERATIONS + 1):
        model.feed_data(batch)
        model.optimize_parameters(iteration)
        pixel_losses.append(model.log_dict['l_pix'])
    assert pixel_losses[-1] < 0.97 * pixel_losses[0]
    trained = model.get_bare_model(model.net_g).state_dict()
    assert any(not torch.equal(trained[key], value) for key, value in twin_state.items() if key not in skipped)


def test_initialisation_from_an_unrelated_checkpoint_is_rejected(tmp_path):
    from basicsr.archs import build_network
    torch.save({'params': {'something.else': torch.zeros(3)}}, tmp_path / 'other.pth')
    student = build_network(copy.deepcopy(STUDENT))
    with pytest.raises(ValueError, match=r'path\.pretrain_network_g: no tensor of .*other\.pth \[params\] matches'):
        load_weights(student, tmp_path / 'other.pth', strict=False, option_key='path.pretrain_network_g')

"""Quantized students (weight_bits, act_bits) in SNNModel and DistillSNNModel: training, checkpoints, twin-init."""
import copy
from pathlib import Path

import pytest
import torch

from basicsr_snn.archs.quantization import trained_weight, weight_bits_of
from snn_options import build_model, in_process_options, training_batch, training_options


def options_with(tmp_path, data_root, teacher_path, model_type, name='quantized', pretrained=None, **network):
    options = training_options(tmp_path, data_root, name, model_type, total_iter=3, teacher_path=teacher_path)
    options['network_g'].update(network)
    if pretrained:
        options['path'].update(pretrain_network_g=str(pretrained), strict_load_g=False)
    return in_process_options(tmp_path, options)


def train(model, batch, iterations):
    for current_iter in range(1, iterations + 1):
        model.update_learning_rate(current_iter)
        model.feed_data(batch)
        model.optimize_parameters(current_iter)


def output_of_checkpoint(options, checkpoint, batch):
    """The output of a test-mode SNNModel that loads ``checkpoint`` strictly."""
    test_options = copy.deepcopy(options)
    test_options.update(is_train=False, model_type='SNNModel')
    test_options['path'].update(pretrain_network_g=str(checkpoint), strict_load_g=True)
    tester = build_model(test_options)
    tester.feed_data(batch)
    tester.test()
    return tester.output


@pytest.mark.parametrize('model_type, bits', [('SNNModel', {'weight_bits': 8, 'act_bits': 8}),
                                              ('SNNModel', {'weight_bits': 4}),
                                              ('DistillSNNModel', {'weight_bits': 8, 'act_bits': 8})])
def test_quantized_student_trains_and_its_checkpoint_reloads(tmp_path, data_root, teacher_path, model_type, bits):
    options = options_with(tmp_path, data_root, teacher_path, model_type, **bits)
    model = build_model(options)
    head = model.get_bare_model(model.net_g).head
    assert weight_bits_of(head) == bits['weight_bits']
    before = trained_weight(head).detach().clone()
    batch = training_batch(options)
    train(model, batch, 3)
    assert not torch.equal(trained_weight(head), before)  # the float weights behind the quantizer learn
    model.save(epoch=0, current_iter=3)
    checkpoint = Path(options['path']['models']) / 'net_g_3.pth'
    model.feed_data(batch)
    model.test()
    assert torch.equal(output_of_checkpoint(options, checkpoint, batch), model.output)


def test_a_float_checkpoint_initialises_a_quantized_student(tmp_path, data_root, teacher_path):
    float_options = options_with(tmp_path, data_root, teacher_path, 'SNNModel', name='float')
    float_model = build_model(float_options)
    train(float_model, training_batch(float_options), 2)
    float_model.save(epoch=0, current_iter=2)
    checkpoint = Path(float_options['path']['models']) / 'net_g_2.pth'
    float_net = float_model.get_bare_model(float_model.net_g)

    options = options_with(tmp_path, data_root, teacher_path, 'DistillSNNModel', name='twin_init',
                           pretrained=checkpoint, weight_bits=8, act_bits=8)
    model = build_model(options)
    student = model.get_bare_model(model.net_g)
    for name in ('head', 'embed.0', 'encoder1.0.conv1', 'up1.1'):
        assert torch.equal(trained_weight(student.get_submodule(name)), float_net.get_submodule(name).weight), name
    train(model, training_batch(options), 2)
    assert torch.isfinite(model.output).all()

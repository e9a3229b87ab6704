"""PromptIR: the authors' configuration, its decoder's prompt blocks and its hint points."""
import pytest
import torch
import torch.nn.functional as F

import basicsr_snn  # noqa: F401  (registers the archs)
from basicsr.utils.registry import ARCH_REGISTRY
from basicsr_snn.archs.promptir_arch import PROMPTIR_PRESETS, PromptGenBlock, PromptIR
from basicsr_snn.utils.module_paths import list_module_paths

SMALL = PROMPTIR_PRESETS['small']


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope='module')
def release_state_dict():
    """The state dict of the authors' configuration (3 channels, decoder=True), without memory."""
    with torch.device('meta'):
        return ARCH_REGISTRY.get('PromptIR')(inp_channels=3, out_channels=3, decoder=True).state_dict()


def test_authors_configuration_has_the_published_size(release_state_dict):
    assert len(release_state_dict) == 548
    assert sum(tensor.numel() for tensor in release_state_dict.values()) == 35_592_263


def test_names_and_shapes_follow_the_release(release_state_dict):
    # shapes read off the release's constructor (dim 48: prompts of 64/128/320 channels)
    expected = {
        'prompt1.prompt_param': (1, 5, 64, 64, 64),
        'prompt3.prompt_param': (1, 5, 320, 16, 16),
        'prompt3.linear_layer.weight': (5, 384),
        'prompt2.conv3x3.weight': (128, 128, 3, 3),
        'noise_level3.attn.temperature': (4, 1, 1),
        'noise_level3.norm1.body.weight': (704, ),
        'reduce_noise_level3.weight': (192, 704, 1, 1),
        'reduce_noise_level2.weight': (192, 320, 1, 1),
        'reduce_noise_level1.weight': (96, 160, 1, 1),
        'up4_3.body.0.weight': (384, 192, 3, 3),
        'reduce_chan_level3.weight': (192, 288, 1, 1),
        'chnl_reduce3.weight': (256, 320, 1, 1),
        'reduce_noise_channel_1.weight': (48, 112, 1, 1),
        'patch_embed.proj.weight': (48, 3, 3, 3),
        'refinement.3.ffn.project_out.weight': (48 * 2, 255, 1, 1),
        'output.weight': (3, 96, 3, 3),
    }
    assert {name: tuple(release_state_dict[name].shape) for name in expected} == expected
    assert 'patch_embed.proj.bias' not in release_state_dict


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('size', [(17, 23), (8, 8), (40, 25)])
def test_output_has_the_input_shape(channels, size):
    model = PromptIR(inp_channels=channels, out_channels=channels, **SMALL).eval()
    x = torch.rand(1, channels, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_prompt_block_is_a_softmax_weighted_sum_of_resized_prompts():
    block = PromptGenBlock(prompt_dim=4, prompt_len=3, prompt_size=5, lin_dim=6)
    x = torch.randn(2, 6, 7, 9)
    weights = torch.softmax(x.mean((2, 3)) @ block.linear_layer.weight.T + block.linear_layer.bias, dim=1)
    expected = []
    for sample in range(2):
        prompt = sum(weights[sample, k] * block.prompt_param[0, k] for k in range(3))
        expected.append(F.interpolate(prompt[None], (7, 9), mode='bilinear', align_corners=False))
    torch.testing.assert_close(block(x), block.conv3x3(torch.cat(expected)))


def test_every_prompt_reaches_the_output():
    model = PromptIR(**SMALL)
    x = torch.rand(2, 3, 16, 16)
    (model(x) - x).abs().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_unused_release_layers_only_add_parameters():
    without = PromptIR(**SMALL)
    torch.manual_seed(0)
    with_layers = PromptIR(**{**SMALL, 'unused_release_layers': True})
    extra = set(with_layers.state_dict()) - set(without.state_dict())
    assert extra == {f'{name}.weight' for name in ('chnl_reduce1', 'chnl_reduce2', 'chnl_reduce3',
                                                   'reduce_noise_channel_1', 'reduce_noise_channel_2',
                                                   'reduce_noise_channel_3')}
    with_layers.load_state_dict(without.state_dict(), strict=False)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(with_layers(x), without(x))


def test_hint_points_have_the_documented_shapes():
    d, (p1, p2, p3) = SMALL['dim'], SMALL['prompt_dims']
    shapes = {path: shape for path, _, shape in list_module_paths(PromptIR(**SMALL), (1, 3, 30, 17))}
    # 30 x 17 is padded to 32 x 24
    assert shapes['decoder_level3'] == (1, 4 * d, 8, 6)
    assert shapes['noise_level3'] == (1, 8 * d + p3, 4, 3)
    assert shapes['reduce_noise_level3'] == (1, 4 * d, 4, 3)
    assert shapes['reduce_noise_level2'] == (1, 4 * d, 8, 6)
    assert shapes['noise_level1'] == (1, 2 * d + p1, 16, 12)
    assert shapes['prompt2'] == (1, p2, 8, 6)
    assert shapes['decoder_level2'] == (1, 2 * d, 16, 12)
    assert shapes['decoder_level1'] == shapes['refinement'] == (1, 2 * d, 32, 24)


@pytest.mark.parametrize('options, key', [
    (dict(decoder=False), 'decoder'),
    (dict(heads=(1, 2, 5, 8)), 'heads'),
    (dict(prompt_dims=(8, 16)), 'prompt_dims'),
    (dict(prompt_sizes=(16, 0, 4)), 'prompt_sizes'),
    (dict(prompt_dims=(8, 16, 30)), 'heads'),
    (dict(out_channels=1), 'out_channels'),
])
def test_invalid_options_name_the_option(options, key):
    with pytest.raises(ValueError, match=key):
        PromptIR(**{**SMALL, **options})

"""Restormer (the paper's teacher) and BasicSR's own archs used unchanged as teachers."""
import pytest
import torch
import torch.nn.functional as F

import basicsr_snn  # noqa: F401  (registers the archs)
from basicsr.utils.registry import ARCH_REGISTRY
from basicsr_snn.archs.restormer_arch import MDTA, RESTORMER_PRESETS, ChannelLayerNorm, Restormer
from parameter_counts import restormer_params

SMALL = RESTORMER_PRESETS['small']


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('channels', [1, 3])
def test_paper_configuration_has_the_published_parameter_count(channels):
    with torch.device('meta'):
        model = ARCH_REGISTRY.get('Restormer')(inp_channels=channels, out_channels=channels)
    assert count_params(model) == restormer_params(channels)
    assert count_params(model) == pytest.approx(26.1e6, abs=0.05e6)  # the paper's 26.1M, rounded


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('layer_norm_type', ['WithBias', 'BiasFree'])
def test_small_preset_parameter_count_follows_the_layers(channels, layer_norm_type):
    model = Restormer(inp_channels=channels, out_channels=channels, LayerNorm_type=layer_norm_type, **SMALL)
    assert count_params(model) == restormer_params(channels, dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                                                   layer_norm_type=layer_norm_type)


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('size', [(17, 23), (40, 24)])
@pytest.mark.parametrize('layer_norm_type', ['WithBias', 'BiasFree'])
def test_output_has_the_input_shape(channels, size, layer_norm_type):
    model = Restormer(inp_channels=channels, out_channels=channels, LayerNorm_type=layer_norm_type, **SMALL).eval()
    x = torch.rand(1, channels, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_backward_fills_every_gradient():
    model = Restormer(inp_channels=1, out_channels=1, **SMALL)
    x = torch.rand(2, 1, 16, 16)
    (model(x) - x).abs().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_dual_pixel_variant_maps_six_channels_to_three():
    model = Restormer(inp_channels=6, out_channels=3, dual_pixel_task=True, **SMALL)
    assert model(torch.rand(1, 6, 16, 16)).shape == (1, 3, 16, 16)


def test_mdta_equals_per_head_channel_attention():
    dim, heads = 8, 2
    attention = MDTA(dim, heads, bias=False)
    with torch.no_grad():
        attention.temperature.copy_(torch.tensor([0.5, 2.]).view(2, 1, 1))
    x = torch.randn(2, dim, 5, 6)
    qkv = attention.qkv_dwconv(attention.qkv(x)).flatten(2)
    query, key, value = qkv.chunk(3, dim=1)
    width = dim // heads
    outputs = []
    for head in range(heads):
        part = slice(head * width, (head + 1) * width)
        q, k = F.normalize(query[:, part], dim=-1), F.normalize(key[:, part], dim=-1)
        weights = torch.softmax(q @ k.transpose(1, 2) * attention.temperature[head], dim=-1)
        outputs.append(weights @ value[:, part])
    expected = attention.project_out(torch.cat(outputs, 1).view(2, dim, 5, 6))
    torch.testing.assert_close(attention(x), expected)


def test_layer_norms_normalise_each_pixel_over_channels():
    x = torch.randn(2, 6, 3, 4) * 3 + 1
    mean = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    torch.testing.assert_close(ChannelLayerNorm(6, 'WithBias')(x), (x - mean) / torch.sqrt(var + 1e-5))
    torch.testing.assert_close(ChannelLayerNorm(6, 'BiasFree')(x), x / torch.sqrt(var + 1e-5))


def test_parameter_names_follow_the_authors_release():
    names = set(Restormer(**SMALL).state_dict())
    for expected in ('patch_embed.proj.weight', 'encoder_level1.0.norm1.body.weight',
                     'encoder_level1.0.norm1.body.bias', 'encoder_level1.0.attn.temperature',
                     'encoder_level1.0.attn.qkv_dwconv.weight', 'latent.0.ffn.project_in.weight',
                     'down1_2.body.0.weight', 'up4_3.body.0.weight', 'reduce_chan_level3.weight',
                     'decoder_level1.0.ffn.dwconv.weight', 'refinement.0.attn.project_out.weight', 'output.weight'):
        assert expected in names


@pytest.mark.parametrize('options, key', [
    (dict(heads=(1, 3, 4, 8)), 'heads'),
    (dict(num_blocks=(1, 1, 1)), 'num_blocks'),
    (dict(LayerNorm_type='RMS'), 'LayerNorm_type'),
    (dict(dim=7), 'dim'),
    (dict(out_channels=1), 'out_channels'),
])
def test_invalid_options_name_the_option(options, key):
    with pytest.raises(ValueError, match=key):
        Restormer(**{**SMALL, **options})


def test_patch_embedding_has_no_bias_as_in_the_release():
    # the release builds OverlapPatchEmbed(inp_channels, dim) without passing ``bias``
    names = set(Restormer(bias=True, **SMALL).state_dict())
    assert 'patch_embed.proj.bias' not in names and 'output.bias' in names and 'encoder_level1.0.attn.qkv.bias' in names


@pytest.mark.parametrize('layer_norm_type', ['WithBias', 'BiasFree'])
def test_layer_norms_of_large_fp16_features_match_float32(layer_norm_type):
    """Under fp16 autocast the variance of features of about 1000 (1e6) is beyond fp16's range."""
    norm = ChannelLayerNorm(16, layer_norm_type)
    features = 1000 * torch.randn(2, 16, 4, 4)
    expected = norm(features)
    with torch.autocast('cpu', dtype=torch.float16):
        normalised = norm(features.half())
    torch.testing.assert_close(normalised.float(), expected, atol=2e-3, rtol=2e-3)


def test_channel_attention_of_an_all_zero_fp16_query_is_finite():
    from basicsr_snn.archs.restormer_arch import channel_attention
    query = torch.zeros(1, 4, 3, 3, dtype=torch.float16)
    key = torch.randn(1, 4, 3, 3).half()
    output = channel_attention(query, key, key, torch.ones(2, 1, 1, dtype=torch.float16))
    torch.testing.assert_close(output.float(), channel_attention(query.float(), key.float(), key.float(),
                                                                 torch.ones(2, 1, 1)), atol=1e-2, rtol=1e-2)

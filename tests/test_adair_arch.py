"""AdaIR: the authors' configuration, its frequency blocks and its hint points."""
import numpy as np
import pytest
import torch

import basicsr_snn  # noqa: F401  (registers the archs)
from basicsr.utils.registry import ARCH_REGISTRY
from basicsr_snn.archs.adair_arch import ADAIR_PRESETS, AdaIR, FreModule
from basicsr_snn.archs.restormer_arch import RESTORMER_PRESETS, Restormer
from basicsr_snn.utils.module_paths import list_module_paths

SMALL = ADAIR_PRESETS['small']


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope='module')
def release_state_dict():
    """The state dict of the authors' configuration (3 channels, decoder=True), without memory."""
    with torch.device('meta'):
        return ARCH_REGISTRY.get('AdaIR')(inp_channels=3, out_channels=3, decoder=True).state_dict()


def test_authors_configuration_has_the_published_size(release_state_dict):
    assert len(release_state_dict) == 587
    assert sum(tensor.numel() for tensor in release_state_dict.values()) == 28_784_824


def test_names_and_shapes_follow_the_release(release_state_dict):
    # shapes read off the release's constructor (dim 48; fre1 at 384, fre3 at 96 channels)
    expected = {
        'fre1.conv.weight': (384, 3, 3, 3),
        'fre1.conv1.weight': (384, 3, 3, 3),
        'fre1.score_gen.weight': (2, 2, 7, 7),
        'fre1.score_gen.bias': (2, ),
        'fre1.para1': (384, 1, 1),
        'fre2.channel_cross_l.temperature': (4, 1, 1),
        'fre2.channel_cross_h.kv_dwconv.weight': (384, 1, 3, 3),
        'fre3.channel_cross_agg.q.weight': (96, 96, 1, 1),
        'fre3.frequency_refine.SpatialGate.spatial.weight': (1, 2, 7, 7),
        'fre3.frequency_refine.ChannelGate.mlp.0.weight': (6, 96, 1, 1),
        'fre3.frequency_refine.ChannelGate.mlp.2.weight': (96, 6, 1, 1),
        'fre3.frequency_refine.proj.bias': (96, ),
        'fre2.rate_conv.0.weight': (24, 192, 1, 1),
        'fre2.rate_conv.2.weight': (2, 24, 1, 1),
        'up4_3.body.0.weight': (768, 384, 3, 3),
        'reduce_chan_level3.weight': (192, 384, 1, 1),
    }
    assert {name: tuple(release_state_dict[name].shape) for name in expected} == expected


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('size', [(17, 23), (8, 8), (40, 25)])
def test_output_has_the_input_shape(channels, size):
    model = AdaIR(inp_channels=channels, out_channels=channels, **SMALL).eval()
    x = torch.rand(1, channels, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_without_decoder_it_is_restormer():
    restormer = Restormer(**RESTORMER_PRESETS['small'])
    adair = AdaIR(**RESTORMER_PRESETS['small'], decoder=False)
    assert adair.load_state_dict(restormer.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(adair(x), restormer(x))


def test_low_frequency_mask_is_the_centred_box_of_the_release():
    block = FreModule(dim=16, num_heads=1, bias=False, in_dim=1)
    torch.nn.init.zeros_(block.rate_conv[2].weight)  # both rates sigmoid(0) = 0.5
    for (height, width), (half_h, half_w) in (((256, 384), (1, 1)), ((512, 200), (2, 0)), ((100, 100), (0, 0))):
        mask = block.low_frequency_mask(torch.rand(2, 16, height, width))
        expected = torch.zeros(2, 1, height, width)
        expected[..., height // 2 - half_h:height // 2 + half_h, width // 2 - half_w:width // 2 + half_w] = 1
        assert torch.equal(mask, expected), (height, width)


def test_frequency_split_against_numpy():
    block = FreModule(dim=16, num_heads=1, bias=False, in_dim=1)
    torch.nn.init.zeros_(block.rate_conv[2].weight)  # half-sides 1: frequencies -1 and 0 are low
    image = torch.rand(1, 1, 256, 256)
    high, low = block.split_frequencies(image)
    spectrum = np.fft.fft2(block.conv1(image).detach().numpy().astype(np.float64))
    keep = np.zeros((256, 256))
    keep[np.ix_([0, 255], [0, 255])] = 1
    np.testing.assert_allclose(low.detach().numpy(), np.abs(np.fft.ifft2(spectrum * keep)), atol=1e-5)
    np.testing.assert_allclose(high.detach().numpy(), np.abs(np.fft.ifft2(spectrum * (1 - keep))), atol=1e-5)
    # under 128 pixels a side the low band is empty: the high band is the whole embedding
    small = torch.rand(1, 1, 64, 64)
    high, low = block.split_frequencies(small)
    assert torch.equal(low, torch.zeros_like(low))
    torch.testing.assert_close(high, block.conv1(small).abs(), atol=1e-5, rtol=0)


def test_frequency_blocks_start_as_the_identity_and_then_modulate():
    model = AdaIR(**SMALL)
    features = torch.randn(2, 16, 8, 8)
    image = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(model.fre3(image, features), features)
    with torch.no_grad():
        model.fre3.para1.fill_(1)
    modulated = model.fre3(image, features)
    assert (modulated - features).abs().mean() > 1e-3
    modulated.sum().backward()
    for name in ('conv1.weight', 'channel_cross_l.q.weight', 'channel_cross_agg.kv.weight',
                 'frequency_refine.proj.weight', 'frequency_refine.SpatialGate.spatial.weight'):
        assert model.fre3.get_parameter(name).grad.abs().sum() > 0, name


def test_hint_points_have_the_documented_shapes():
    d = SMALL['dim']
    shapes = {path: shape for path, _, shape in list_module_paths(AdaIR(**SMALL), (1, 3, 30, 17))}
    # 30 x 17 is padded to 32 x 24
    assert shapes['fre1'] == (1, 8 * d, 4, 3)
    assert shapes['decoder_level3'] == shapes['fre2'] == (1, 4 * d, 8, 6)
    assert shapes['decoder_level2'] == shapes['fre3'] == (1, 2 * d, 16, 12)
    assert shapes['decoder_level1'] == shapes['refinement'] == (1, 2 * d, 32, 24)


@pytest.mark.parametrize('options, key', [
    (dict(heads=(1, 2, 3, 8)), 'heads'),
    (dict(dim=6, heads=(1, 2, 4, 8)), 'dim'),
    (dict(decoder='yes'), 'decoder'),
    (dict(out_channels=1), 'out_channels'),
])
def test_invalid_options_name_the_option(options, key):
    with pytest.raises(ValueError, match=key):
        AdaIR(**{**SMALL, **options})


class FFTInputs(torch.overrides.TorchFunctionMode):
    """Records the dtype of every tensor that a ``torch.fft`` transform receives."""

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, '__module__', '') == 'torch._C._fft':
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_the_transforms_receive_float32_under_autocast(dtype):
    model = AdaIR(**SMALL, inp_channels=1, out_channels=1)
    image = torch.rand(1, 1, 20, 28)  # a size that is no power of two, which cuFFT's fp16 refuses
    with torch.autocast('cpu', dtype=dtype), FFTInputs() as seen:
        output = model(image)
    # fft2 and ifftshift/ifft2 of each band, at three blocks
    assert len(seen.dtypes) >= 9 and set(seen.dtypes) == {torch.float32, torch.complex64}, seen.dtypes
    assert seen.dtypes.count(torch.float32) == 3  # one fft2 of the embedding per block
    assert torch.isfinite(output).all() and output.shape == image.shape

import pytest
import torch
from torch import nn

from gan.config import ModelConfig
from gan.models import Discriminator, Generator, disc_widths, gen_widths, init_weights, num_params


@pytest.mark.parametrize("arch", ["dcgan", "seed"])
@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes(arch, size):
    cfg = ModelConfig(arch=arch, gen_features=4, disc_features=4, dim_z=16, image_size=size)
    gen, disc = Generator(cfg), Discriminator(cfg)
    z = torch.randn(3, 16, 1, 1)
    x = gen(z)
    assert x.shape == (3, 3, size, size)
    assert x.abs().max() <= 1
    assert disc(x).shape == (3,)


def test_seed_pair_matches_the_article():
    """The article's nets at width 16: G blocks 32, 16, 8, 4 x width, D 1, 1, 2, 4 x width."""
    cfg = ModelConfig(arch="seed", gen_features=16, disc_features=16, dim_z=64, image_size=64)
    assert gen_widths(cfg) == [512, 256, 128, 64]
    assert disc_widths(cfg) == [16, 16, 32, 64]
    # conv weights + BatchNorm affine parameters, counted by hand from the article's code
    g_conv = 64 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 3 * 16
    d_conv = 3 * 16 * 16 + 16 * 16 * 16 + 16 * 32 * 16 + 32 * 64 * 16 + 64 * 1 * 16
    assert num_params(Generator(cfg)) == g_conv + 2 * (512 + 256 + 128 + 64) == 3_281_792
    assert num_params(Discriminator(cfg)) == d_conv + 2 * (16 + 32 + 64) == 47_072


def test_dcgan_pair_is_balanced():
    cfg = ModelConfig(arch="dcgan", gen_features=64, disc_features=64, dim_z=100, image_size=64)
    assert gen_widths(cfg) == [512, 256, 128, 64]
    assert disc_widths(cfg) == [64, 128, 256, 512]
    ratio = num_params(Generator(cfg)) / num_params(Discriminator(cfg))
    assert 1 < ratio < 1.5


def test_dcgan_init():
    torch.manual_seed(0)
    gen = Generator(ModelConfig(gen_features=32, image_size=64))
    init_weights(gen)
    convs = [m.weight for m in gen.modules() if isinstance(m, nn.ConvTranspose2d)]
    bns = [m for m in gen.modules() if isinstance(m, nn.BatchNorm2d)]
    weights = torch.cat([w.flatten() for w in convs])
    assert weights.mean().abs() < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    bn_w = torch.cat([m.weight for m in bns])
    assert bn_w.mean().item() == pytest.approx(1.0, abs=0.01)
    assert all((m.bias == 0).all() for m in bns)

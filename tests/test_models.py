from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from gan.config import ModelConfig
from gan.nets.models import (
    Discriminator,
    Generator,
    disc_widths,
    gen_widths,
    init_weights,
    num_params,
)

# run folders written by pumpgan at commit 26fc4a1 (before the nets became plain torch.nn), with
# their nets' outputs in eval mode on the checkpoint's fixed noise
OLD_RUNS = Path(__file__).parent / "fixtures" / "checkpoints_26fc4a1"


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


def test_disc_head_is_fp32_under_bf16_autocast():
    cfg = ModelConfig(arch="dcgan", gen_features=4, disc_features=4, dim_z=16, image_size=32)
    disc = Discriminator(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert disc.net[0](torch.randn(2, 3, 32, 32)).dtype == torch.bfloat16
        assert disc(torch.randn(2, 3, 32, 32)).dtype == torch.float32


def test_nets_are_plain_torch_layers():
    """What print(gen) shows is what runs: library layers only, no hardware arguments."""
    cfg = ModelConfig(arch="seed", gen_features=4, disc_features=4, dim_z=16, image_size=64)
    library = (nn.Sequential, nn.ConvTranspose2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU)
    library += (nn.LeakyReLU, nn.Tanh)
    for net in (Generator(cfg), Discriminator(cfg)):
        assert {type(m) for m in net.net.modules()} <= set(library)
    assert "ConvTranspose2d(64, 32, kernel_size=(4, 4), stride=(2, 2)" in repr(Generator(cfg))


@pytest.mark.parametrize("arch", ["dcgan", "seed"])
def test_checkpoints_of_earlier_versions_load(arch):
    """A checkpoint written before the nets became plain torch.nn loads with the same
    state_dict keys (strict) and computes what it computed then."""
    run = OLD_RUNS / arch
    cfg = ModelConfig(**OmegaConf.to_container(OmegaConf.load(run / ".hydra/config.yaml").model))
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    expected = torch.load(run / "expected_eval_outputs.pt", weights_only=True)
    gen, disc = Generator(cfg), Discriminator(cfg)
    assert list(gen.state_dict()) == list(state["gen"])
    assert list(disc.state_dict()) == list(state["disc"])
    gen.load_state_dict(state["gen"])
    disc.load_state_dict(state["disc"])
    gen.eval(), disc.eval()
    with torch.no_grad():
        images = gen(state["fixed_noise"])
        torch.testing.assert_close(images, expected["images"])
        torch.testing.assert_close(disc(images), expected["logits"])

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan.config import ModelConfig
from gan.models import (
    Discriminator,
    Generator,
    Project,
    ToRGB,
    UpConv,
    _SmallUpConv,
    _ToRGB,
    conv_transpose_by_gemm,
    disc_widths,
    gen_widths,
    init_weights,
    num_params,
)


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


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    ("layer", "library", "side"),
    [
        (Project(10, 8), nn.ConvTranspose2d(10, 8, 4, 1, 0, bias=False), 1),
        (UpConv(12, 8), nn.ConvTranspose2d(12, 8, 4, 2, 1, bias=False), 4),
    ],
    ids=["project", "upconv"],
)
def test_fast_layers_compute_the_library_convolution(layer, library, side, fmt):
    """G's first two layers take faster kernels; in fp64 they agree with nn.ConvTranspose2d
    exactly, forward and backward, and keep the memory format."""
    library.weight.data.copy_(layer.weight.data)
    layer, library = (m.double().to(memory_format=fmt) for m in (layer, library))
    x = torch.randn(3, layer.in_channels, side, side, dtype=torch.float64)
    x = x.contiguous(memory_format=fmt).requires_grad_()
    y, y_ref = layer(x), library(x)
    assert y.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, layer.weight], grad)
    want = torch.autograd.grad(y_ref, [x, library.weight], grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gemm_weight_gradient_is_exact():
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_SmallUpConv.apply, (x, w, False))


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_gemm_transposed_convolution_is_exact(fmt):
    """G's last layer's forward (every tap by one GEMM, then the phases' shifted sums) is the
    library's transposed convolution, on a non-square input, and its autograd Function's
    gradients are right."""
    x = torch.randn(3, 7, 5, 6, dtype=torch.float64).contiguous(memory_format=fmt)
    w = torch.randn(7, 3, 4, 4, dtype=torch.float64)
    y = conv_transpose_by_gemm(x, w, kernel=False)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, F.conv_transpose2d(x, w, stride=2, padding=1), rtol=0, atol=1e-12)
    x, w = x[:2, :, :3, :4].requires_grad_(), w.requires_grad_()
    assert torch.autograd.gradcheck(_ToRGB.apply, (x, w, False))


@pytest.mark.parametrize(
    ("layer", "side", "function"),
    [
        (UpConv(64, 32), 4, "_SmallUpConvBackward"),
        (UpConv(32, 16), 8, "_SmallUpConvBackward"),
        (ToRGB(64), 16, "_ToRGBBackward"),
    ],
    ids=["upconv-4x4", "upconv-8x8", "to-rgb"],
)
def test_gemm_paths_under_bf16_autocast_match_the_library(layer, side, function):
    """Under CPU bf16 autocast G's first two stride-2 blocks take the GEMM weight gradient and
    its last layer the GEMM forward; they agree with oneDNN's to bf16 rounding, and the gradient
    reaches the fp32 weight in fp32."""
    torch.manual_seed(0)
    library = nn.ConvTranspose2d(layer.in_channels, layer.out_channels, 4, 2, 1, bias=False)
    library.weight.data.copy_(layer.weight.data)
    x = torch.randn(16, layer.in_channels, side, side).contiguous(memory_format=torch.channels_last)
    outs, grads = [], []
    for m in (layer, library):
        m.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        assert y.dtype == torch.bfloat16
        assert (function in y.grad_fn.name()) == (m is layer)  # the GEMM path was taken
        (y.float() ** 2).sum().backward()
        outs.append(y.float())
        grads.append(m.weight.grad)
    assert grads[0].dtype == torch.float32
    torch.testing.assert_close(outs[0], outs[1], rtol=2e-2, atol=2e-2 * outs[1].abs().max().item())
    torch.testing.assert_close(
        grads[0], grads[1], rtol=2e-2, atol=2e-2 * grads[1].abs().max().item()
    )


def test_disc_head_is_fp32_under_bf16_autocast():
    cfg = ModelConfig(arch="dcgan", gen_features=4, disc_features=4, dim_z=16, image_size=32)
    disc = Discriminator(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert disc.net[0](torch.randn(2, 3, 32, 32)).dtype == torch.bfloat16
        assert disc(torch.randn(2, 3, 32, 32)).dtype == torch.float32

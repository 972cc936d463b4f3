"""Tests for the procedural jack-o'-lantern data set (gan/pumpkins.py)."""

import numpy as np
import pytest

from gan.data.pumpkins import generate, render


@pytest.mark.parametrize("size", [16, 32, 64])
def test_generate_shape_dtype_and_range(size: int) -> None:
    x = generate(6, size, seed=3)
    assert x.shape == (6, 3, size, size)
    assert x.dtype == np.uint8
    for img in x:
        assert int(img.max()) - int(img.min()) > 100  # dark backdrop and bright glow, not flat


def test_render_shape_and_odd_size() -> None:
    img = render(np.random.default_rng(0), 37)
    assert img.shape == (37, 37, 3)
    assert img.dtype == np.uint8
    assert img.std() > 10


def test_render_matches_generate_layout() -> None:
    x = generate(2, 32, seed=5)
    img = render(np.random.default_rng([5, 1]), 32)
    np.testing.assert_array_equal(x[1], img.transpose(2, 0, 1))


def test_deterministic_per_seed() -> None:
    a, b = generate(4, 32, seed=7), generate(4, 32, seed=7)
    np.testing.assert_array_equal(a, b)
    c = generate(4, 32, seed=8)
    assert not np.array_equal(a, c)
    assert all(not np.array_equal(a[i], a[i + 1]) for i in range(3))


def test_prefix_stable() -> None:
    small, large = generate(3, 32, seed=11), generate(7, 32, seed=11)
    np.testing.assert_array_equal(small, large[:3])


def test_plausible_jack_o_lanterns() -> None:
    size = 32
    x = generate(64, size, seed=0).astype(np.float32)  # (n, 3, h, w)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]

    ring = np.zeros((size, size), bool)
    ring[:3], ring[-3:], ring[:, :3], ring[:, -3:] = True, True, True, True
    centre = np.zeros((size, size), bool)
    centre[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True

    # The centre is orange (R > G > B) on average, and more so than the border.
    rc, gc, bc = r[:, centre].mean(), g[:, centre].mean(), b[:, centre].mean()
    assert rc > gc > bc
    assert rc - bc > 2 * (r[:, ring].mean() - b[:, ring].mean())
    # The border ring is dark.
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    assert lum[:, ring].mean() < 30
    assert lum[:, centre].mean() > 2 * lum[:, ring].mean()
    # Most images have bright yellow-orange pixels: the glowing carved face.
    yellow = (r > 200) & (g > 140) & (b < 0.8 * g)
    assert (yellow.reshape(len(x), -1).sum(1) >= 3).mean() > 0.8

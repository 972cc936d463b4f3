"""gan/quality.py: SWD against a brute-force reference, on images of known difference from the
built-in pumpkins, its pyramid, and sample_quality."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from gan.data.pumpkins import generate
from gan.run.quality import (
    MOMENT_WEIGHT,
    SWD,
    descriptors,
    laplacian_pyramid,
    level_sizes,
    moment_gap,
    patch_positions,
    patches,
    pyr_up,
    random_directions,
    sample_quality,
    sliced_wasserstein,
    swd,
    to_unit_range,
)

NUM, SIZE = 128, 32


@pytest.fixture(scope="module")
def real() -> torch.Tensor:
    return torch.from_numpy(generate(NUM, SIZE, seed=0))


@pytest.fixture(scope="module")
def other() -> torch.Tensor:
    """As many pumpkins of another data seed, in [-1, 1]: a perfect generator's samples."""
    return to_unit_range(torch.from_numpy(generate(NUM, SIZE, seed=1)))


@pytest.fixture(scope="module")
def same_data(real: torch.Tensor, other: torch.Tensor) -> SWD:
    """SWD between two samples of the pumpkins: what a perfect generator scores at NUM images."""
    return swd(other, real)


@pytest.fixture(scope="module")
def floor(same_data: SWD) -> float:
    return same_data["swd"]


# ---- brute force: loops over images, channels, pixels, patches and directions, in float64
BINOMIAL = [[a * b / 256 for b in (1, 4, 6, 4, 1)] for a in (1, 4, 6, 4, 1)]
Plane = list[list[float]]


def mirror(i: int, n: int) -> int:
    return -i if i < 0 else 2 * (n - 1) - i if i >= n else i


def blur(plane: Plane, gain: float, stride: int) -> Plane:
    n = len(plane)
    return [
        [
            gain
            * sum(
                BINOMIAL[dy + 2][dx + 2] * plane[mirror(y + dy, n)][mirror(x + dx, n)]
                for dy in range(-2, 3)
                for dx in range(-2, 3)
            )
            for x in range(0, n, stride)
        ]
        for y in range(0, n, stride)
    ]


def upsample(plane: Plane) -> Plane:
    n = 2 * len(plane)
    zeros = [
        [plane[y // 2][x // 2] if y % 2 == x % 2 == 0 else 0.0 for x in range(n)] for y in range(n)
    ]
    return blur(zeros, 4.0, 1)


def slow_pyramid(plane: Plane, levels: int) -> list[Plane]:
    gaussian = [plane]
    for _ in range(levels - 1):
        gaussian.append(blur(gaussian[-1], 1.0, 2))
    detail = []
    for g, coarser in itertools.pairwise(gaussian):
        up = upsample(coarser)
        detail.append([[g[y][x] - up[y][x] for x in range(len(g))] for y in range(len(g))])
    return [*detail, gaussian[-1]]


def slow_pyramids(images: torch.Tensor) -> list[list[list[Plane]]]:
    """Indexed [level][image][channel]."""
    levels = len(level_sizes(images.shape[-1]))
    per_plane = [[slow_pyramid(plane, levels) for plane in image] for image in images.tolist()]
    return [[[pyramid[k] for pyramid in image] for image in per_plane] for k in range(levels)]


def slow_patches(level: list[list[Plane]], positions: torch.Tensor) -> list[list[Plane]]:
    return [
        [
            [[level[i][c][top + dy][left + dx] for dx in range(7)] for dy in range(7)]
            for c in range(3)
        ]
        for i, top, left in positions.tolist()
    ]


def slow_stats(planes: list[list[Plane]]) -> list[tuple[float, float]]:
    """Per channel (mean, std) over every value of the planes (patches or images)."""
    stats = []
    for c in range(3):
        values = [v for p in planes for row in p[c] for v in row]
        mean = sum(values) / len(values)
        stats.append((mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))))
    return stats


def slow_descriptors(patches: list[list[Plane]]) -> list[list[float]]:
    stats = slow_stats(patches)
    return [
        [(v - stats[c][0]) / stats[c][1] for c in range(3) for row in p[c] for v in row]
        for p in patches
    ]


def slow_moment_gap(fake: list[list[Plane]], real: list[list[Plane]]) -> float:
    (fake_stats, real_stats) = slow_stats(fake), slow_stats(real)

    def rms(values: list[float]) -> float:
        return math.sqrt(sum(v * v for v in values) / len(values))

    mean_gap = rms([f[0] - r[0] for f, r in zip(fake_stats, real_stats, strict=True)])
    std_gap = rms([f[1] - r[1] for f, r in zip(fake_stats, real_stats, strict=True)])
    return (mean_gap + std_gap) / rms([r[1] for r in real_stats])


def slow_sliced_wasserstein(
    a: list[list[float]], b: list[list[float]], directions: torch.Tensor
) -> float:
    per_repeat = []
    for repeat in directions.double().tolist():
        per_direction = []
        for k in range(len(repeat[0])):
            d = [row[k] for row in repeat]
            proj_a = sorted(sum(x * y for x, y in zip(desc, d, strict=True)) for desc in a)
            proj_b = sorted(sum(x * y for x, y in zip(desc, d, strict=True)) for desc in b)
            gaps = [abs(x - y) for x, y in zip(proj_a, proj_b, strict=True)]
            per_direction.append(sum(gaps) / len(gaps))
        per_repeat.append(sum(per_direction) / len(per_direction))
    return sum(per_repeat) / len(per_repeat)


@pytest.mark.parametrize("moments", [True, False])
def test_pyramid_descriptors_and_distance_match_brute_force(moments: bool):
    fake = to_unit_range(torch.from_numpy(generate(3, 32, seed=2)))
    real = to_unit_range(torch.from_numpy(generate(3, 32, seed=3)))
    fast_fake, slow_fake, slow_real = (
        laplacian_pyramid(fake),
        slow_pyramids(fake),
        slow_pyramids(real),
    )
    for fast, slow in zip(fast_fake, slow_fake, strict=True):
        torch.testing.assert_close(fast, torch.tensor(slow).float(), atol=2e-6, rtol=0)

    # the draws in swd()'s order: per level, fake's positions, real's, then the directions
    generator = torch.Generator().manual_seed(7)
    levels = {}
    for k, side in enumerate(level_sizes(32)):
        fake_pos = patch_positions(3, side, generator, per_image=8)
        real_pos = patch_positions(3, side, generator, per_image=8)
        dirs = random_directions(generator, repeats=2, per_repeat=3)
        fake_desc = slow_descriptors(slow_patches(slow_fake[k], fake_pos))
        real_desc = slow_descriptors(slow_patches(slow_real[k], real_pos))
        torch.testing.assert_close(
            descriptors(patches(fast_fake[k], fake_pos)),
            torch.tensor(fake_desc).float(),
            atol=1e-4,
            rtol=0,
        )
        distance = slow_sliced_wasserstein(fake_desc, real_desc, dirs)
        fast = sliced_wasserstein(
            torch.tensor(fake_desc).float(), torch.tensor(real_desc).float(), dirs
        )
        assert fast == pytest.approx(distance, rel=1e-4)
        levels[str(side)] = distance * 1e3
        if moments:
            gap = slow_moment_gap(slow_fake[k], slow_real[k])
            assert moment_gap(fast_fake[k], laplacian_pyramid(real)[k]) == pytest.approx(gap)
            levels[str(side)] += MOMENT_WEIGHT * gap

    got = swd(
        fake, real, seed=7, patches_per_image=8, repeats=2, dirs_per_repeat=3, moments=moments
    )
    assert got["swd_levels"] == pytest.approx(levels, rel=1e-4)
    assert got["swd"] == pytest.approx(sum(levels.values()) / len(levels), rel=1e-4)
    assert got["swd_moments"] is moments and ("swd_gaps" in got) is moments


def test_patch_positions_cover_every_valid_place_evenly():
    image, top, left = patch_positions(5, 16, torch.Generator().manual_seed(0), 2000).T
    assert image.tolist() == [i for i in range(5) for _ in range(2000)]
    # 16 - 7 + 1 = 10 top-left corners per axis, each drawn about 1,000 times of 10,000
    for corner in (top, left):
        counts = torch.bincount(corner, minlength=10)
        assert len(counts) == 10 and counts.min() > 850 and counts.max() < 1150


def test_descriptors_are_normalised_per_channel_at_scale():
    # 65,536 patches: 3.2 million values per channel, where a float32 reduction can drift
    level = torch.randn(512, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.1 + 0.02
    positions = patch_positions(512, 16, torch.Generator().manual_seed(1))
    desc = descriptors(patches(level, positions)).double().view(-1, 3, 49)
    torch.testing.assert_close(desc.mean((0, 2)), torch.zeros(3).double(), atol=1e-6, rtol=0)
    std = desc.std((0, 2), correction=0)
    torch.testing.assert_close(std, torch.ones(3).double(), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("size", "sides"), [(16, [16]), (32, [32, 16]), (64, [64, 32, 16]), (128, [128, 64, 32, 16])]
)
def test_pyramid_sizes(size: int, sides: list[int]):
    assert level_sizes(size) == sides
    levels = laplacian_pyramid(torch.rand(2, 3, size, size))
    assert [tuple(level.shape) for level in levels] == [(2, 3, s, s) for s in sides]


def test_pyramid_rejects_small_or_unevenly_halving_sizes():
    with pytest.raises(ValueError, match="at least 16 px"):
        level_sizes(8)
    with pytest.raises(ValueError, match="halve evenly"):
        level_sizes(66)  # 66 -> 33 -> 16


def test_constant_image_is_all_in_the_last_level():
    colour = torch.tensor([0.3, -0.5, 0.9]).view(1, 3, 1, 1)
    *detail, coarse = laplacian_pyramid(colour.expand(2, 3, 64, 64).contiguous())
    for level in detail:
        torch.testing.assert_close(level, torch.zeros_like(level), atol=1e-6, rtol=0)
    torch.testing.assert_close(coarse, colour.expand(2, 3, 16, 16), atol=1e-6, rtol=0)


def test_pyramid_reconstructs_the_image(real: torch.Tensor):
    images = to_unit_range(real[:8])
    *detail, image = laplacian_pyramid(images)
    for level in reversed(detail):
        image = level + pyr_up(image)
    torch.testing.assert_close(image, images, atol=1e-5, rtol=0)


# ---- SWD on images of known difference
def test_two_samples_of_the_data_are_close(same_data: SWD):
    levels = same_data["swd_levels"]
    assert list(levels) == ["32", "16"]
    # about 35 at 128 images: the paper's 28 plus moment gaps of 1 (32 px) and 13 (16 px, where
    # the two samples' mean colours differ by their sampling noise); one image repeated scores
    # about 158, uniform noise 537
    assert all(0 < value < 50 for value in levels.values()), same_data
    assert all(0 < gap < 15 for gap in same_data["swd_gaps"].values()), same_data
    assert same_data["swd"] == pytest.approx(sum(levels.values()) / 2, abs=1e-4)


def test_to_unit_range():
    assert to_unit_range(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [-1.0, 1.0]
    assert to_unit_range(torch.tensor([-0.5], dtype=torch.bfloat16)).dtype == torch.float32
    with pytest.raises(TypeError, match="uint8"):
        to_unit_range(torch.tensor([3]))


def test_same_seed_same_value_other_seed_close(
    real: torch.Tensor, other: torch.Tensor, floor: float
):
    again = swd(other, real, seed=0)["swd"]
    moved = swd(other, real, seed=1)["swd"]
    assert again == floor
    assert moved != floor and moved == pytest.approx(floor, rel=0.25)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    taps = torch.exp(-(torch.arange(-3, 4.0) ** 2) / (2 * sigma**2))
    taps = (taps / taps.sum()).expand(3, 1, 7)
    x = F.conv2d(F.pad(x, (3, 3, 3, 3), mode="replicate"), taps[..., None, :], groups=3)
    return F.conv2d(x, taps[..., None], groups=3)


def add_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return (x + std * noise).clamp(-1, 1)


def rotate_hue(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotation of the RGB colours about the grey axis (Rodrigues): orange -> green -> blue."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    cross = torch.tensor([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]]) / math.sqrt(3)
    rotation = c * torch.eye(3) + (1 - c) / 3 + s * cross
    return torch.einsum("ij,njhw->nihw", rotation, x).clamp(-1, 1)


@pytest.mark.parametrize(
    ("damage", "strengths"),
    [(gaussian_blur, [0.5, 1.0, 2.0]), (add_noise, [0.05, 0.1, 0.2]), (rotate_hue, [30, 90, 180])],
)
def test_grows_with_the_damage(real, other, floor, damage, strengths):
    values = [floor] + [swd(damage(other, s), real)["swd"] for s in strengths]
    assert values == sorted(values) and len(set(values)) == len(values), values
    assert values[-1] > 3 * floor, values


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The whole set's contrast times `factor`, about its mean colour: a per-channel affine map."""
    mean = x.mean((0, 2, 3), keepdim=True)
    return mean + (x - mean) * factor


def grey(x: torch.Tensor) -> torch.Tensor:
    return x.mean(1, keepdim=True).expand_as(x).contiguous()


@pytest.mark.parametrize("colour", [lambda x: x, grey], ids=["colour", "grey"])
def test_grows_as_the_contrast_falls(real, other, floor, colour):
    # x1, x0.5, x0.25 (128 images): colour 35 / 83 / 107, grey 124 / 152 / 170
    values = [swd(contrast(colour(other), f), real)["swd"] for f in (1, 0.5, 0.25)]
    assert values == sorted(values) and len(set(values)) == len(values), values
    assert values[-1] > 2.5 * floor, values


def test_faint_grey_ranks_worse_than_a_slightly_blurred_colour_copy(real, other):
    faint_grey = swd(contrast(grey(other), 0.25), real)["swd"]
    assert faint_grey > 2 * swd(gaussian_blur(other, 0.5), real)["swd"]


def test_without_moments_blind_to_a_global_colour_offset_and_gain(real, other, floor):
    # the paper's SWD normalises each set per channel by its own mean and std, so a cast or a
    # contrast change of the whole set is not seen; the moment gap term sees it
    cast = other * 0.7 + torch.tensor([0.2, 0.0, -0.3]).view(1, 3, 1, 1)
    paper = swd(other, real, moments=False)
    assert paper["swd_moments"] is False and 20 < paper["swd"] < floor
    assert swd(cast, real, moments=False)["swd"] == pytest.approx(paper["swd"], rel=1e-3)
    faint = contrast(other, 0.25)
    assert swd(faint, real, moments=False)["swd"] == pytest.approx(paper["swd"], rel=1e-3)
    assert swd(cast, real)["swd"] > 2.5 * floor  # 94 against 35


def test_one_repeated_image_and_noise_are_far(
    real: torch.Tensor, other: torch.Tensor, floor: float
):
    repeated = other[:1].expand_as(other).contiguous()
    noise = torch.rand(other.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert swd(repeated, real)["swd"] > 3 * floor
    assert swd(noise, real)["swd"] > 6 * floor


def test_needs_as_many_fake_as_real_images(real: torch.Tensor, other: torch.Tensor):
    with pytest.raises(ValueError, match="equal numbers of images"):
        swd(other[:10], real)
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        swd(other[:, :1], real[:, :1])


def test_sample_quality(real: torch.Tensor, other: torch.Tensor):
    assert sample_quality(to_unit_range(real), real) == {"diversity": 1.0, "colour_gap": 0.0}
    collapsed = sample_quality(other[:1].expand_as(other), real)
    assert collapsed["diversity"] == 0.0 and collapsed["colour_gap"] > 0

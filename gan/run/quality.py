"""Sample quality without a pretrained network: the sliced Wasserstein distance (SWD) and a cheap
diversity check.

SWD (Karras et al., "Progressive Growing of GANs for Improved Quality, Stability, and
Variation", ICLR 2018, appendix D) compares the distributions of small patches of two image
sets, level by level of a Laplacian pyramid, so it works offline and on small data sets:

1. each image -> Laplacian pyramid (5x5 binomial filter) from its full size down to 16 px:
   64 px images give levels 64, 32 and 16; the finer levels hold the detail at their scale
   (band-pass), the 16 px level is the blurred image itself (low-pass);
2. per level, 128 7x7 patches per image at uniformly random positions, each a 3 x 7 x 7 = 147
   value descriptor; each set's descriptors are normalised per colour channel by that set's own
   mean and std at that level (the paper's choice, which makes the distance below blind to a
   per-channel gain and offset of a whole set: faint grey mush scores as grey images at full
   contrast);
3. per level, the 1-D Wasserstein-1 distance between the two sets' projections onto 4 x 128
   random unit directions (sort both projections, mean absolute difference), averaged over the
   directions.

4. with `moments=True` (pumpgan's SWD), what step 2 hides is added back per level: the gap
   between the two sets' per-channel means and standard deviations, as the root mean square over
   the channels of each, in units of the real set's (RMS) standard deviation at that level, x
   MOMENT_WEIGHT. A gap of one real standard deviation in mean or spread costs 100 (x1e3), about
   what a Gaussian blur of 2 px does to the patch distance; two samples of real data have gaps of
   a few hundredths. `moments=False` is the paper's number, for comparison with published ones
   and with runs of pumpgan before the term (their summary.json has no `swd_moments`).

Normalising both sets by the real set's statistics instead, the obvious fix, was tried and
dropped: a mean shift is coherent over a patch's 49 pixels, so a colour cast of a tenth of a
standard deviation outweighed every difference in shape, and in a study it ranked blurred orange
blobs above clear jack-o'-lanterns (docs/quality.md).

`swd(fake, real)` reports each level's distance x1e3 and their mean, the headline number, as in
the paper. Lower is better. Two samples of the same distribution do not give 0 but a floor set by
the number of images (more images, lower floor), so compare numbers only at the same image count,
size and kind: the real-vs-real value at that count is the reference point. The finer levels see
texture and edges, the 16 px level overall shapes and colour layout.

    from gan.run.quality import swd
    swd(fake, real, seed=0)  # fake: (N, 3, S, S) float in [-1, 1]; real: the same or uint8
    # {"swd": ..., "swd_levels": {"64": ..., "32": ..., "16": ...}, "swd_moments": True,
    #  "swd_gaps": {"64": ..., "32": ..., "16": ...}, "swd_images": 2048}

The random patch positions and directions come from a torch.Generator seeded with `seed`, so a
seed gives the same number every time; another seed moves it by the sampling noise.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import NotRequired, TypedDict

import torch
import torch.nn.functional as F

MIN_LEVEL = 16  # px, the coarsest pyramid level
PATCH = 7  # px, the side of a descriptor's patch
PATCHES_PER_IMAGE = 128
REPEATS = 4  # draws of random directions per level
DIRS_PER_REPEAT = 128

# x1e3 per real standard deviation of gap in the sets' per-channel means or spreads (step 4)
MOMENT_WEIGHT = 100.0

# the 5x5 binomial filter of the reference code (and of cv2.pyrDown) is the outer product of
# these taps with themselves, [1, 4, 6, 4, 1]^T [1, 4, 6, 4, 1] / 256; applied as two 1-D passes
TAPS = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


class SWD(TypedDict):
    """The result of `swd`: a plain dict, JSON ready."""

    # mean of the levels, x1e3, rounded to 4 decimals
    swd: float
    # x1e3 per pyramid level, keyed by the level's side in px as a string, finest first
    swd_levels: dict[str, float]
    # the moment gap term is in (pumpgan's SWD) or out (the paper's)
    swd_moments: bool
    # with swd_moments: each level's moment gap term, included in swd_levels
    swd_gaps: NotRequired[dict[str, float]]
    # images in each set: the floor, and so the number, depends on it
    swd_images: int


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] (the data cache) or float [-1, 1] (the generator) -> float32 [-1, 1]."""
    if images.dtype == torch.uint8:
        return images.float().div_(127.5).sub_(1)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 in [0, 255] or float in [-1, 1], not {images.dtype}")
    return images.detach().float()


def _blur(x: torch.Tensor, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """(N, C, H, W) convolved with the binomial filter x `gain`, sampled every `stride` pixels,
    the borders reflected without repeating the edge pixel (d c b | a b c d: scipy's "mirror",
    cv2's default, as in the reference code)."""
    h, w = x.shape[-2:]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    # weighted sums of shifted views: several times faster than a 5x5 conv2d on the CPU
    rows = x[..., 0:w:stride] * TAPS[0]
    for i in range(1, 5):
        rows.add_(x[..., i : i + w : stride], alpha=TAPS[i])
    out = rows[..., 0:h:stride, :] * (TAPS[0] * gain)
    for i in range(1, 5):
        out.add_(rows[..., i : i + h : stride, :], alpha=TAPS[i] * gain)
    return out


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur and keep every second row and column: (N, C, S, S) -> (N, C, S/2, S/2)."""
    return _blur(x, stride=2)


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """Zeros between the pixels, then blur x4 (3 of 4 pixels are zero):
    (N, C, S, S) -> (N, C, 2S, 2S)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return _blur(up, gain=4.0)


def level_sizes(size: int) -> list[int]:
    """The pyramid's sides, finest first: 64 -> [64, 32, 16]; 48 -> [48, 24]."""
    if size < MIN_LEVEL:
        raise ValueError(f"SWD needs images of at least {MIN_LEVEL} px, got {size} px")
    sizes = [size]
    while sizes[-1] // 2 >= MIN_LEVEL:
        if sizes[-1] % 2:
            raise ValueError(f"{size} px does not halve evenly down to {MIN_LEVEL} px")
        sizes.append(sizes[-1] // 2)
    return sizes


def laplacian_pyramid(images: torch.Tensor) -> list[torch.Tensor]:
    """Float images (N, C, S, S) -> one (N, C, s, s) tensor per side s of `level_sizes(S)`,
    finest first: gaussian level minus the next one upsampled; the last is the gaussian level."""
    gaussian = [images]
    for _ in level_sizes(images.shape[-1])[1:]:
        gaussian.append(pyr_down(gaussian[-1]))
    detail = [g - pyr_up(coarser) for g, coarser in itertools.pairwise(gaussian)]
    return [*detail, gaussian[-1]]


def patch_positions(
    num_images: int,
    size: int,
    generator: torch.Generator,
    per_image: int = PATCHES_PER_IMAGE,
) -> torch.Tensor:
    """(num_images * per_image, 3) int64 rows (image, top, left): `per_image` patches of each
    image, their top-left corners uniform over the size - PATCH + 1 valid places per axis."""
    image = torch.arange(num_images).repeat_interleave(per_image)
    corner = torch.randint(0, size - PATCH + 1, (len(image), 2), generator=generator)
    return torch.cat([image[:, None], corner], 1)


def patches(level: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The 7x7 patches of one pyramid level (N, 3, s, s) at `positions` (from patch_positions):
    (P, 3, 7, 7), a copy."""
    windows = level.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # (N, 3, s-6, s-6, 7, 7), a view
    image, top, left = positions.to(level.device).unbind(1)
    return windows[image, :, top, left]


def descriptors(patches: torch.Tensor) -> torch.Tensor:
    """(P, 3, 7, 7) patches -> (P, 147) descriptors, normalised per channel by the patches' own
    mean and std (as numpy's, in the reference code); in place. A flat set (e.g. blank images)
    keeps its float rounding noise at that size instead of having it scaled up to unit
    variance."""
    mean = patches.mean((0, 2, 3), keepdim=True)
    std = patches.std((0, 2, 3), correction=0, keepdim=True)
    return patches.sub_(mean).div_(std.clamp_min(1e-5)).flatten(1)


def moment_gap(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Step 4 of the module's docstring for one pyramid level of each set (N, 3, s, s): the RMS
    over channels of the mean gap plus that of the std gap, over the real set's RMS std."""

    def rms(x: torch.Tensor) -> torch.Tensor:
        return x.square().mean().sqrt()

    (fake_mean, fake_std), (real_mean, real_std) = (
        (x.mean((0, 2, 3)), x.std((0, 2, 3), correction=0)) for x in (fake, real)
    )
    gap = rms(fake_mean - real_mean) + rms(fake_std - real_std)
    return (gap / rms(real_std).clamp_min(1e-5)).item()


def random_directions(
    generator: torch.Generator,
    repeats: int = REPEATS,
    per_repeat: int = DIRS_PER_REPEAT,
    dim: int = 3 * PATCH * PATCH,
) -> torch.Tensor:
    """(repeats, dim, per_repeat): unit vectors in `dim` dimensions, uniform on the sphere."""
    dirs = torch.randn(repeats, dim, per_repeat, generator=generator)
    return dirs / dirs.norm(dim=1, keepdim=True)


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    """`x` (2-D) sorted along its rows. On the CPU in place by numpy, whose SIMD sort is several
    times faster than torch.sort there and makes no index tensor; the sorts are most of SWD's
    time."""
    if x.device.type != "cpu":
        return x.sort(dim=1).values
    x.numpy().sort(axis=1)
    return x


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> float:
    """Mean over `directions` (repeats, D, dirs) of the Wasserstein-1 distance between the
    projections of descriptor sets `a` and `b` (P, D) onto each direction."""
    if a.shape != b.shape:
        raise ValueError(f"descriptor sets differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    total = 0.0
    # numpy's sort releases the GIL: the two sets' projections (dirs, P) sort in parallel
    with ThreadPoolExecutor(2) as pool:
        for dirs in directions.to(a.device):
            proj_a, proj_b = pool.map(_sort_rows, (dirs.T @ a.T, dirs.T @ b.T))
            total += proj_a.sub_(proj_b).abs_().mean().item()
    return total / len(directions)


@torch.no_grad()
def swd(
    fake: torch.Tensor,
    real: torch.Tensor,
    seed: int = 0,
    *,
    patches_per_image: int = PATCHES_PER_IMAGE,
    repeats: int = REPEATS,
    dirs_per_repeat: int = DIRS_PER_REPEAT,
    moments: bool = True,
) -> SWD:
    """SWD x1e3 between two equal-sized image sets (N, 3, S, S), each uint8 in [0, 255] or float
    in [-1, 1], computed on fake's device. The defaults are the paper's; fewer patches or
    directions give noisier numbers that are not comparable to the default ones. `moments`: add
    the moment gap term (pumpgan's SWD) or not (the paper's). Memory: both
    pyramids, then one level's descriptors and projections at a time, about 1 GB for 2,048
    images of 64 px, in proportion to N."""
    if fake.ndim != 4 or fake.shape[1] != 3 or fake.shape[2] != fake.shape[3]:
        raise ValueError(f"images must be (N, 3, S, S), got fake {tuple(fake.shape)}")
    if fake.shape != real.shape:
        raise ValueError(
            f"swd compares equal numbers of images of one size: fake {tuple(fake.shape)}, "
            f"real {tuple(real.shape)}"
        )
    generator = torch.Generator().manual_seed(seed)
    num = fake.shape[0]
    pyramids = zip(
        laplacian_pyramid(to_unit_range(fake)),
        laplacian_pyramid(to_unit_range(real.to(fake.device))),
        strict=True,
    )
    levels: dict[str, float] = {}
    gaps: dict[str, float] = {}
    for fake_level, real_level in pyramids:
        side = fake_level.shape[-1]
        size = str(side)
        fake_desc, real_desc = (  # fake's positions drawn first, then real's
            descriptors(patches(level, patch_positions(num, side, generator, patches_per_image)))
            for level in (fake_level, real_level)
        )
        dirs = random_directions(generator, repeats, dirs_per_repeat)
        levels[size] = sliced_wasserstein(fake_desc, real_desc, dirs) * 1e3
        if moments:
            gaps[size] = MOMENT_WEIGHT * moment_gap(fake_level, real_level)
            levels[size] += gaps[size]
    result: SWD = {
        "swd": round(sum(levels.values()) / len(levels), 4),
        "swd_levels": {k: round(v, 4) for k, v in levels.items()},
        "swd_moments": moments,
        "swd_images": num,
    }
    if moments:
        result["swd_gaps"] = {k: round(v, 4) for k, v in gaps.items()}
    return result


def sample_quality(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Cheap truth-tellers the D means cannot give. diversity: mean pairwise distance between
    the fixed-noise samples over that between as many real images (near 0: mode collapse;
    about 1: as varied as the data). colour_gap: distance between the mean colours, in [0, 1]
    units of the RGB range."""

    def mean_pairwise(x: torch.Tensor) -> float:
        flat = F.avg_pool2d(x, x.shape[-1] // 16).flatten(1) if x.shape[-1] > 16 else x.flatten(1)
        return torch.pdist(flat).mean().item()

    real = real.float().div(127.5).sub(1)
    diversity = mean_pairwise(fake) / max(mean_pairwise(real), 1e-9)
    colour_gap = (fake.mean((0, 2, 3)) - real.mean((0, 2, 3))).norm().item() / 2
    return {"diversity": round(diversity, 4), "colour_gap": round(colour_gap, 4)}

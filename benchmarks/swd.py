"""Time of `gan.run.quality.swd` on the built-in pumpkins, and the real-vs-real SWD it reports.

Per image size it generates --num pumpkins of data seed 0 (the "real" set) and --num of data
seed 1 (standing in for samples of a perfect generator), then prints the median time of 3 calls
of swd(seed 1 set, seed 0 set), the process's peak RSS so far, and the SWD x1e3 per pyramid
level: the floor a generator's samples can reach at this image count.

With --seen, it then prints what the SWD sees at the last size: the seed-1 set changed in ways
a generator goes wrong (grey, low contrast, a colour cast, blurred) against the real set, as
pumpgan's SWD (with the moment gap term, gan/run/quality.py) and as the paper's (without).

    uv run python benchmarks/swd.py                  # 2,048 images at 64 and 32 px
    uv run python benchmarks/swd.py --num 2000 --sizes 32 --seen
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

# importing it also puts the checkout (`gan`) on sys.path
from throughput import machine

# isort: split
from gan.data.pumpkins import generate  # noqa: E402  (after throughput: sys.path)
from gan.run.quality import pyr_down, pyr_up, swd, to_unit_range  # noqa: E402


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The set's contrast times `factor`, about its mean colour."""
    mean = x.mean((0, 2, 3), keepdim=True)
    return mean + (x - mean) * factor


def seen(real: torch.Tensor, other: torch.Tensor) -> None:
    """The SWD of `other` changed in several ways against `real`, with and without moments."""
    other = to_unit_range(other)
    grey = other.mean(1, keepdim=True).expand_as(other).contiguous()
    changes = {
        "unchanged (another data seed)": other,
        "contrast x0.5": contrast(other, 0.5),
        "contrast x0.25": contrast(other, 0.25),
        "grey": grey,
        "grey, contrast x0.25": contrast(grey, 0.25),
        "brighter by 0.1 (5% of the range)": other + 0.1,
        "blurred (finest band removed)": pyr_up(pyr_down(other)),
    }
    print("\n| images against the real set | pumpgan's SWD | the paper's |\n|---|---|---|")
    for name, images in changes.items():
        values = [swd(images, real, moments=m)["swd"] for m in (True, False)]
        print(f"| {name} | {values[0]:.2f} | {values[1]:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=2048, help="images per set")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 32], help="image sides, px")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per size")
    parser.add_argument("--seen", action="store_true", help="also what each normalisation sees")
    args = parser.parse_args()

    print(machine())
    print(f"\n{args.num} pumpkins (data seed 1) vs {args.num} pumpkins (data seed 0)\n")
    print("| px | median s | min s | peak RSS MB | SWD x1e3 | per level (px: x1e3) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        real = torch.from_numpy(generate(args.num, size, seed=0))
        other = torch.from_numpy(generate(args.num, size, seed=1))
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            result = swd(other, real, seed=0)
            times.append(time.perf_counter() - start)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        levels = ", ".join(f"{side}: {value:.2f}" for side, value in result["swd_levels"].items())
        print(
            f"| {size} | {statistics.median(times):.2f} | {min(times):.2f} | {rss_mb:.0f} "
            f"| {result['swd']:.2f} | {levels} |"
        )
    if args.seen:
        seen(real, other)


if __name__ == "__main__":
    main()

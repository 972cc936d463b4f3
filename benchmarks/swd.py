"""Time of `gan.run.quality.swd` on the built-in pumpkins, and the real-vs-real SWD it reports.

Per image size it generates --num pumpkins of data seed 0 (the "real" set) and --num of data
seed 1 (standing in for samples of a perfect generator), then prints the median time of 3 calls
of swd(seed 1 set, seed 0 set), the process's peak RSS so far, and the SWD x1e3 per pyramid
level: the floor a generator's samples can reach at this image count.

    uv run python benchmarks/swd.py                  # 2,048 images at 64 and 32 px
    uv run python benchmarks/swd.py --num 512 --sizes 32
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
from gan.run.quality import swd  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=2048, help="images per set")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 32], help="image sides, px")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per size")
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


if __name__ == "__main__":
    main()

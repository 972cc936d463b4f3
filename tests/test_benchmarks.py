"""benchmarks/throughput.py end to end in its smallest settings, so that the script cannot rot."""

import re
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


def run_throughput(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quick_prints_a_row_per_width():
    done = run_throughput("--quick")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| width | baseline img/s | pumpgan img/s | pumpgan/baseline |" in done.stdout
    row = re.search(r"^\| 16 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", done.stdout, re.MULTILINE)
    assert row, done.stdout
    baseline, pumpgan, ratio = map(float, row.groups())
    assert baseline > 0 and pumpgan > 0
    # one round: the median of the per-round ratios is the ratio of the two numbers
    assert ratio == pytest.approx(pumpgan / baseline, rel=0.02)


def test_sweep_quick_counts_the_steps_saved():
    done = run_throughput("--sweep", "--quick")
    assert done.returncode == 0, done.stderr[-3000:]
    on = re.search(r"^\| true \| (\d+) \| ([\d.]+) \|", done.stdout, re.MULTILINE)
    off = re.search(r"^\| false \| (\d+) \| ([\d.]+) \|", done.stdout, re.MULTILINE)
    assert on and off, done.stdout
    # without stopping, every one of the 3 trials trains its 60 steps
    assert int(off[1]) == 3 * 60
    assert 0 < int(on[1]) <= int(off[1])
    assert "compute saved by stopping at the collapse:" in done.stdout

"""benchmarks/throughput.py, profile_step.py and ab_step.py end to end in their smallest
settings, so that the scripts cannot rot."""

import re
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


def run_throughput(*args: str, script: str = "throughput.py") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quick_prints_a_row_per_width():
    done = run_throughput("--quick", *("--widths", "4", "--steps", "3", "--warmup", "1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| width | baseline img/s | pumpgan img/s | pumpgan/baseline |" in done.stdout
    row = re.search(r"^\| 4 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", done.stdout, re.MULTILINE)
    assert row, done.stdout
    baseline, pumpgan, ratio = map(float, row.groups())
    assert baseline > 0 and pumpgan > 0
    # one round: the median of the per-round ratios is the ratio of the two numbers
    assert ratio == pytest.approx(pumpgan / baseline, rel=0.02)


def test_sweep_quick_counts_the_steps_saved():
    done = run_throughput("--sweep", "--quick", "--trials", "2", "--steps", "40")
    assert done.returncode == 0, done.stderr[-3000:]
    on = re.search(r"^\| true \| (\d+) \| ([\d.]+) \|", done.stdout, re.MULTILINE)
    off = re.search(r"^\| false \| (\d+) \| ([\d.]+) \|", done.stdout, re.MULTILINE)
    assert on and off, done.stdout
    # without stopping, every one of the 2 trials trains its 40 steps
    assert int(off[1]) == 2 * 40
    assert 0 < int(on[1]) <= int(off[1])
    assert "compute saved by stopping at the collapse:" in done.stdout


def test_profile_quick_prints_categories_layers_and_bounds():
    done = run_throughput("--quick", "--width", "4", "--steps", "1", script="profile_step.py")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # the step's time by category, the FLOP ops' rate against the GEMM peak
    flop_row = r"^\| convolutions \+ matmuls \| [\d.]+ \| [\d.]+% \| \d+ \(\d+%\) \|"
    assert re.search(flop_row, out, re.M), out
    # every conv pass of G and D, e.g. G's last layer's forward, and a swapped layer
    assert re.search(r"^\| G4 ConvTranspose2d\(16, 3\) 32px \| forward \| 1 \|", out, re.M), out
    assert re.search(r"^\| G1 GemmGradUpConv\(128, 64\) 4px \| weight grad \| 1 \|", out, re.M), out
    bounds = dict(re.findall(r"^\| (as measured|\([abc]\)).*? \| ([\d.]+)x \|$", out, re.M))
    assert set(bounds) == {"as measured", "(a)", "(b)", "(c)"}, out
    # (b) has every convolution at the peak and nothing else: above (a) by construction, and
    # far above a width-4 step, which is mostly not convolutions
    ratio = {k: float(v) for k, v in bounds.items()}
    assert ratio["as measured"] < ratio["(b)"] and ratio["(a)"] <= ratio["(b)"]


def test_ab_step_compares_two_settings_in_one_process():
    done = run_throughput(
        *("--width", "4", "--rounds", "2", "--warmup", "1"),
        *("--a", "hardware.precision=fp32", "hardware.channels_last=false", "--b"),
        script="ab_step.py",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = dict(re.findall(r"^\| ([AB]) \| .*? \| ([\d.]+) \| [\d.]+ \|$", done.stdout, re.M))
    assert set(rows) == {"A", "B"}, done.stdout
    speed = float(re.search(r"B / A speed: ([\d.]+)x", done.stdout)[1])
    assert speed == pytest.approx(float(rows["A"]) / float(rows["B"]), rel=0.01)


def test_allocator_compares_malloc_settings_in_fresh_processes():
    done = run_throughput("--width", "4", "--steps", "1", "--pairs", "1", script="allocator.py")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = dict(
        re.findall(r"^\| (glibc default|keep freed memory) \| ([\d.]+) \|", done.stdout, re.M)
    )
    assert set(rows) == {"glibc default", "keep freed memory"}, done.stdout
    speed = float(re.search(r"keep / default speed: ([\d.]+)x", done.stdout)[1])
    assert speed == pytest.approx(
        float(rows["glibc default"]) / float(rows["keep freed memory"]), rel=0.01
    )

"""The training loop in-process: golden numbers, determinism, resume, collapse, NaN."""

import csv
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan import config
from gan.nets.losses import LOSSES
from gan.run.folder import METRICS, read_metrics
from gan.run.hardware import keep_freed_memory
from gan.run.train import train

# loss_d and loss_g of the first 5 steps of `tiny_cfg("train.steps=5")` (seed 0, fp32, CPU);
# a change here means the math of a training step (or the built-in data) changed
GOLDEN_LOSS_D = [1.244832, 1.138851, 1.076029, 0.967092, 0.915372]
GOLDEN_LOSS_G = [0.817762, 0.817956, 0.856402, 0.876238, 0.876451]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def metrics_without_time(run: Path) -> list[str]:
    """metrics.csv as text minus the wall-clock column, which no two runs share."""
    lines = (run / "metrics.csv").read_text().splitlines()
    drop = METRICS.index("time_s")
    return [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in lines]


def test_golden_losses(tiny_cfg, tmp_path):
    train(tiny_cfg("train.steps=5"), tmp_path / "run")
    m = read_metrics(tmp_path / "run" / "metrics.csv")
    torch.testing.assert_close(
        torch.tensor(m["loss_d"]), torch.tensor(GOLDEN_LOSS_D), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(
        torch.tensor(m["loss_g"]), torch.tensor(GOLDEN_LOSS_G), rtol=1e-4, atol=1e-5
    )


def test_every_loss_the_config_allows_is_implemented():
    assert set(LOSSES) == set(config.LOSSES)


def test_two_runs_are_bit_identical(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.steps=20")
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    assert metrics_without_time(tmp_path / "a") == metrics_without_time(tmp_path / "b")
    assert len(metrics_without_time(tmp_path / "a")) == 21


def last(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def assert_same_training(a: Path, b: Path) -> None:
    """Bit for bit: the nets, both Adams' moments and settings, and every metrics row."""
    x, y = last(a), last(b)
    assert x["step"] == y["step"]
    for net in ("gen", "disc"):
        for key, value in x[net].items():
            assert torch.equal(value, y[net][key]), f"{net}.{key}"
    for opt in ("opt_g", "opt_d"):
        for idx, state in x[opt]["state"].items():
            assert torch.equal(state["exp_avg"], y[opt]["state"][idx]["exp_avg"])
        for g, h in zip(x[opt]["param_groups"], y[opt]["param_groups"], strict=True):
            assert (g["lr"], g["betas"]) == (h["lr"], h["betas"])
    assert metrics_without_time(a) == metrics_without_time(b)


def test_resume_gives_the_same_weights_as_one_run(tiny_cfg, tmp_path):
    train(tiny_cfg("train.steps=20"), tmp_path / "whole")
    train(tiny_cfg("train.steps=10"), tmp_path / "first")
    train(tiny_cfg("train.steps=20", f"resume={tmp_path / 'first'}"), tmp_path / "second")
    assert last(tmp_path / "second")["step"] == 20
    # the same weights and Adam states, and the resumed folder carries the whole history
    assert_same_training(tmp_path / "whole", tmp_path / "second")
    assert summary(tmp_path / "second")["resumed_from"] == str(tmp_path / "first")
    assert (tmp_path / "second/samples/step_000000.png").is_file()


def test_collapse_stops_training_and_scores_the_fraction(tiny_cfg, tmp_path):
    # a band of [0.45, 0.55] that no real run stays in: collapse after 3 unhealthy steps
    train(tiny_cfg("train.steps=100", "score.eps=0.45", "score.patience=3"), tmp_path / "run")
    s = summary(tmp_path / "run")
    assert s["status"] == "collapsed"
    assert s["collapsed_at"] >= 3
    assert s["score"] == s["collapsed_at"] / 100
    assert s["steps_done"] < 100  # stopped at the next read-back, not at the budget
    assert "for 3 steps" in s["reason"]
    assert (tmp_path / "run/checkpoints/last.pt").is_file()


def test_collapse_without_stopping_trains_the_whole_budget(tiny_cfg, tmp_path):
    train(
        tiny_cfg(
            "train.steps=30", "score.eps=0.45", "score.patience=3", "score.stop_on_collapse=false"
        ),
        tmp_path / "run",
    )
    s = summary(tmp_path / "run")
    assert s["status"] == "collapsed"
    assert s["steps_done"] == 30
    assert s["score"] < 1


def test_grids_less_varied_than_min_diversity_collapse_when_training_ends(tiny_cfg, tmp_path):
    """score.min_diversity (off by default): grids that stay below it from some sample point to
    the end collapse there. No grid is as varied as 5x the data, so this run collapses at 0."""
    args = ["train.steps=20", "train.sample_every=10"]
    plain = train(tiny_cfg(*args), tmp_path / "plain")
    assert plain == 1.0 and summary(tmp_path / "plain")["status"] == "completed"
    score = train(tiny_cfg(*args, "score.min_diversity=5"), tmp_path / "run")
    s = summary(tmp_path / "run")
    assert score == s["score"] == 0.0
    assert s["status"] == "collapsed" and s["collapsed_at"] == 0 and s["steps_done"] == 20
    last = s["quality"]["diversity"]
    assert s["reason"] == (
        "sample diversity < 5.0 in every grid, from the untrained G's at step 0 to the end: G "
        f"never made varied images (last {last:.3f})"
    )


def test_nan_loss_is_a_collapse_not_a_crash(tiny_cfg, tmp_path):
    score = train(
        tiny_cfg(
            "train.steps=50",
            "optim.disc_lr=1e30",
            "optim.gen_lr=1e30",
            "score.stop_on_collapse=false",
        ),
        tmp_path / "run",
    )
    s = summary(tmp_path / "run")
    assert s["status"] == "collapsed"
    assert s["reason"] == "non-finite loss"
    assert score == s["collapsed_at"] / 50
    assert s["steps_done"] < 50  # a NaN always stops the run


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
        ),
    ],
)
def test_bf16_channels_last_path_trains(tiny_cfg, tmp_path, device):
    score = train(
        tiny_cfg(
            "train.steps=10",
            f"hardware.device={device}",
            "hardware.precision=bf16",
            "hardware.channels_last=true",
        ),
        tmp_path / "run",
    )
    s = summary(tmp_path / "run")
    assert s["precision"] == "bf16"
    assert 0 <= score <= 1


@pytest.mark.slow
def test_bf16_agrees_with_fp32(tiny_cfg, tmp_path):
    """bf16 autocast keeps ~3 significant digits, so single steps agree to ~1e-3 and whole
    trajectories drift apart slowly; what must not change is what the run is judged by. Measured
    here: after 150 steps the last-20-step D means differed by 0.002-0.005 and the scores were
    equal; the tolerances leave 6-10x headroom for other CPUs' kernels."""
    runs = {}
    # bf16 as hardware=auto picks it on a CPU: channels-last, with the fast layers
    for precision, layout in (("fp32", "false"), ("bf16", "true")):
        cfg = tiny_cfg(
            "train.steps=150",
            "train.batch_size=32",
            f"hardware.precision={precision}",
            f"hardware.channels_last={layout}",
        )
        score = train(cfg, tmp_path / precision)
        metrics = read_metrics(tmp_path / precision / "metrics.csv")
        runs[precision] = score, metrics, summary(tmp_path / precision)
    (score32, m32, s32), (score16, m16, s16) = runs["fp32"], runs["bf16"]
    assert s16["precision"] == "bf16" and s32["precision"] == "fp32"
    assert s16["fast_layers"] == s32["fast_layers"] == ["gemm_grad"]
    assert score16 == score32
    torch.testing.assert_close(
        torch.tensor(m16["loss_d"][:3]), torch.tensor(m32["loss_d"][:3]), rtol=5e-3, atol=0
    )
    for key in ("d_real", "d_fake"):
        assert abs(sum(m16[key][-20:]) / 20 - sum(m32[key][-20:]) / 20) < 0.03, key
    assert abs(s16["quality"]["diversity"] - s32["quality"]["diversity"]) < 0.05


@pytest.mark.parametrize(
    ("precision", "layout", "rtol"), [("fp32", "false", 1e-3), ("bf16", "true", 2e-2)]
)
@pytest.mark.slow
def test_compiled_nets_train_like_eager_ones(tiny_cfg, tmp_path, precision, layout, rtol):
    """hardware.compile (on for hardware=cuda) runs the same step through torch.compile; the
    generated kernels may reorder float sums, so the losses agree closely, not bit for bit. The
    compiled graph holds gan/fast.py's swapped layers too."""
    args = ("train.steps=5", f"hardware.precision={precision}", f"hardware.channels_last={layout}")
    train(tiny_cfg(*args), tmp_path / "eager")
    train(tiny_cfg(*args, "hardware.compile=true"), tmp_path / "compiled")
    eager = read_metrics(tmp_path / "eager" / "metrics.csv")
    compiled = read_metrics(tmp_path / "compiled" / "metrics.csv")
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        torch.testing.assert_close(
            torch.tensor(compiled[key]), torch.tensor(eager[key]), rtol=rtol, atol=rtol / 10
        )


# a 64 MiB block freed and allocated again: page faults of the second malloc + fill
REFAULTS = """
import ctypes, resource, sys
from gan.run.hardware import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
libc, size = ctypes.CDLL(None), 2**26
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
for i in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    libc.free(block)
print(kept, faults)
"""


def refaults(mode: str, **env: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", REFAULTS, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
        env={**os.environ, **env},
    )
    kept, faults = done.stdout.split()
    return kept, int(faults)


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_freed_memory_is_reused_without_page_faults():
    # by default glibc hands a 64 MiB block back to the kernel and faults in 16,384 fresh pages
    # for the next one; kept, the next one reuses the same pages
    assert refaults("default")[1] > 10_000
    kept, faults = refaults("keep")
    assert kept == "True" and faults < 1_000
    # an allocator the user tuned through the environment is left alone
    kept, faults = refaults("keep", GLIBC_TUNABLES="glibc.malloc.arena_max=2")
    assert kept == "False" and faults > 10_000


def test_summary_records_the_allocator_setting(tiny_cfg, tmp_path):
    train(tiny_cfg("train.steps=2"), tmp_path / "run")
    # True on glibc unless the environment tunes the allocator (see the test above)
    assert summary(tmp_path / "run")["keep_freed_memory"] is keep_freed_memory()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86's flush modes")
def test_a_cpu_run_flushes_denormals_and_records_it(tiny_cfg, tmp_path):
    tiny = torch.finfo(torch.float32).tiny  # the smallest normal float32, ~1.2e-38
    try:
        train(tiny_cfg("train.steps=2"), tmp_path / "run")
        assert summary(tmp_path / "run")["flush_denormal"] is True
        assert (torch.tensor([tiny]) * 0.5).item() == 0.0  # a denormal result is flushed
        train(tiny_cfg("train.steps=2", "hardware.flush_denormal=false"), tmp_path / "off")
        assert summary(tmp_path / "off")["flush_denormal"] is False
        assert (torch.tensor([tiny]) * 0.5).item() == tiny / 2
    finally:
        torch.set_flush_denormal(False)


SWALLOWED = """
import os, signal, sys
from pathlib import Path
from gan.run import interrupts
from gan.run.train import train
from tests.conftest import make_cfg

interrupts.install()  # as run.py does


class Finalizer:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):  # the handler runs here, and its KeyboardInterrupt is swallowed
            pass


Finalizer()
print("still running", flush=True)
try:
    train(make_cfg("train.steps=50", cache_dir=Path(sys.argv[1])), Path(sys.argv[2]))
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.slow
def test_a_ctrl_c_swallowed_by_a_finalizer_still_interrupts_the_run(cache_dir, tmp_path):
    """Python drops a KeyboardInterrupt raised inside a finalizer ("Exception ignored in"); a
    sweep lost a Ctrl-C that way while opening its study and trained on. The signal is recorded
    and the training loop raises it again."""
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", SWALLOWED, str(cache_dir), str(run)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=120,
    )
    assert "Exception ignored" in done.stderr and "KeyboardInterrupt" in done.stderr
    assert done.stdout.split() == ["still", "running", "interrupted"], done.stderr[-2000:]
    assert summary(run)["status"] == "interrupted"
    assert summary(run)["steps_done"] == 0
    assert (run / "checkpoints" / "last.pt").is_file()


def test_every_run_reports_its_swd_and_eval_every_adds_rows(tiny_cfg, tmp_path):
    """summary.json quality.swd at the end of the run, eval.csv rows every eval.every steps; the
    final SWD is the last row's (same G, same noise, same real images, same seed)."""
    train(tiny_cfg("train.steps=20", "eval.every=10"), tmp_path / "run")
    quality = summary(tmp_path / "run")["quality"]
    assert list(quality["swd_levels"]) == ["32", "16"] and quality["swd_moments"] is True
    levels = list(quality["swd_levels"].values())
    assert quality["swd"] == pytest.approx(sum(levels) / 2, abs=1e-3) and quality["swd"] > 0
    with open(tmp_path / "run" / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [10, 20]
    assert list(rows[0]) == ["step", "swd", "swd_32", "swd_16"]
    assert float(rows[-1]["swd"]) == quality["swd"]
    # a resumed run carries the evaluations up to its checkpoint
    train(tiny_cfg("train.steps=30", f"resume={tmp_path / 'run'}"), tmp_path / "more")
    with open(tmp_path / "more" / "eval.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [10, 20]


def test_a_cheaper_swd_during_training_leaves_the_final_one_whole(tiny_cfg, tmp_path):
    """eval.num_images_during: the rows before the last step on fewer images (the first of the
    same draw); the last step's row and summary.json on eval.num_images, also for a pruned run."""
    full = tiny_cfg("train.steps=20", "eval.every=10", "eval.num_images=32")
    train(full, tmp_path / "full")
    cheap = ("train.steps=20", "eval.every=10", "eval.num_images=32", "eval.num_images_during=16")
    train(tiny_cfg(*cheap), tmp_path / "cheap")
    rows = {}
    for name in ("full", "cheap"):
        with open(tmp_path / name / "eval.csv", newline="") as f:
            rows[name] = [float(r["swd"]) for r in csv.DictReader(f)]
    quality = summary(tmp_path / "cheap")["quality"]
    assert quality["swd_images"] == 32 and quality["swd"] == rows["cheap"][1] == rows["full"][1]
    assert rows["cheap"][0] != rows["full"][0]  # 16 images at step 10: another number
    # a run the pruner stops at step 10 gets its final SWD on all 32 images
    train(tiny_cfg(*cheap), tmp_path / "pruned", on_eval=lambda *_: True)
    pruned = summary(tmp_path / "pruned")
    assert pruned["status"] == "pruned" and pruned["quality"]["swd_images"] == 32


@pytest.mark.slow
def test_swd_tells_a_trained_generator_from_an_untrained_one(tiny_cfg, tmp_path):
    """300 steps of the tiny model at the article's learning rates make orange pumpkin-shaped
    blobs, far closer to the data than the untrained G's grey noise (with the paper's SWD
    against 64 real images: ~140 against ~256)."""
    train(tiny_cfg("train.steps=1", "train.checkpoint_every=0"), tmp_path / "untrained")
    train(tiny_cfg("train.steps=300", "optim=seed", "train.sample_every=0"), tmp_path / "trained")
    untrained = summary(tmp_path / "untrained")["quality"]["swd"]
    trained = summary(tmp_path / "trained")["quality"]["swd"]
    assert trained < 0.7 * untrained, (trained, untrained)

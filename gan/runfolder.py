"""Everything a run writes into its folder (DESIGN.md section 4), in one place.

metrics.csv            one row per step (METRICS columns), appended in chunks
eval.csv               one row per in-run evaluation (eval.every): step, swd, swd_<side> per level
samples/step_NNNNNN.png, final.png   fixed-noise grids
checkpoints/last.pt    full training state, atomically replaced
summary.json           status, score and timing, rewritten atomically whenever they change
curves.png             losses and D means over steps with the eps band and the collapse
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from gan.config import UserError

METRICS = ("step", "time_s", "loss_d", "loss_g", "d_real", "d_fake", "d_fake_after")
STATUSES = ("running", "completed", "collapsed", "failed", "interrupted")


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call write(tmp) on a temp file beside `path`, then rename it over `path`: a reader (or a
    kill) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.summary_path = path / "summary.json"
        self.metrics_path = path / "metrics.csv"
        self.eval_path = path / "eval.csv"
        self.samples_dir = path / "samples"
        self.checkpoint_path = path / "checkpoints" / "last.pt"
        self.summary: dict[str, Any] = {}
        self.tensorboard: Any = None  # a SummaryWriter once the run is created

    def check_new(self) -> None:
        if self.summary_path.exists():
            raise UserError(
                f"{self.path} already holds a run (its summary.json exists) and pumpgan never "
                f"overwrites a run folder. Leave hydra.run.dir at its default (a new folder per "
                f"run) or choose a new one; to continue that run, pass resume={self.path}."
            )

    def create(self, summary: dict[str, Any], metrics_rows: list[list[Any]] | None = None) -> None:
        """Start a run: write the first summary and the metrics header (plus rows carried over
        from a resumed run)."""
        self.check_new()
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(METRICS)
            writer.writerows(metrics_rows or [])
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(log_dir=str(self.path / "tensorboard"))
        self._log_scalars(metrics_rows or [])
        self.update_summary(**summary)

    def update_summary(self, **fields: Any) -> None:
        self.summary.update(fields, updated_at=now_iso())

        def write(tmp: Path) -> None:
            tmp.write_text(json.dumps(self.summary, indent=2, default=str) + "\n")

        atomic_write(self.summary_path, write)

    def append_metrics(self, rows: list[list[Any]]) -> None:
        with open(self.metrics_path, "a", newline="") as f:
            csv.writer(f).writerows(rows)
        self._log_scalars(rows)

    def append_eval(self, step: int, quality: Mapping[str, Any]) -> None:
        """One evaluation's SWD (gan.quality.swd's dict) as a row of eval.csv and as TensorBoard
        scalars (quality/swd, quality/swd_<side>)."""
        levels = quality["swd_levels"]
        new = not self.eval_path.exists()
        with open(self.eval_path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "swd", *(f"swd_{side}" for side in levels)])
            writer.writerow([step, quality["swd"], *levels.values()])
        self.log_quality(step, quality)

    def log_quality(self, step: int, quality: Mapping[str, Any]) -> None:
        self.tensorboard.add_scalar("quality/swd", quality["swd"], step)
        for side, value in quality["swd_levels"].items():
            self.tensorboard.add_scalar(f"quality/swd_{side}", value, step)

    def _log_scalars(self, rows: list[list[Any]]) -> None:
        """The same rows as TensorBoard scalars (train/loss_d, train/d_real, ...)."""
        for row in rows:
            step = int(row[0])
            for name, value in zip(METRICS[2:], row[2:], strict=True):
                self.tensorboard.add_scalar(f"train/{name}", float(value), step)

    def save_samples(
        self,
        images: torch.Tensor,
        step: int,
        name: str | None = None,
        diversity: float | None = None,
    ) -> None:
        """samples/step_NNNNNN.png (or `name`), and the same grid (and its diversity) as
        TensorBoard events."""
        grid = save_grid(images, self.samples_dir / (name or f"step_{step:06d}.png"))
        self.tensorboard.add_image("samples", grid, step)
        if diversity is not None:
            self.tensorboard.add_scalar("quality/diversity", diversity, step)

    def close(self, score: float, step: int) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("score", score, step)
            self.tensorboard.close()

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write(self.checkpoint_path, lambda tmp: torch.save(state, tmp))


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] as one PNG, `nrow` per row, on a black frame; returns the
    grid as a uint8 (3, H', W') tensor.
    (torchvision.utils.save_image does the same, but importing it costs seconds per run.)"""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, _, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = torch.zeros(
        3, rows * (h + padding) + padding, cols * (w + padding) + padding, dtype=torch.uint8
    )
    for i in range(n):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
    return grid


def read_metrics(path: Path) -> dict[str, list[float]]:
    """metrics.csv as columns of floats."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in METRICS}


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        raise UserError(
            f"resume={str(run_dir)!r}: no checkpoint at {path}. Pass the run folder of a run "
            f"that saved one (it writes checkpoints/last.pt every train.checkpoint_every steps)."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def plot_curves(
    path: Path, metrics: dict[str, list[float]], eps: float, collapsed_at: int | None, title: str
) -> None:
    """curves.png: losses (top) and both D means with the eps band (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = metrics["step"]
    fig, (ax_loss, ax_d) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax_loss.plot(steps, metrics["loss_d"], label="loss D", lw=0.8)
    ax_loss.plot(steps, metrics["loss_g"], label="loss G", lw=0.8)
    ax_loss.set_ylabel("BCE loss")
    ax_loss.legend(loc="upper right")
    ax_loss.set_title(title, fontsize=9)
    ax_d.plot(steps, metrics["d_real"], label="D(x)", lw=0.8, color="tab:green")
    ax_d.plot(steps, metrics["d_fake"], label="D(G(z))", lw=0.8, color="tab:red")
    ax_d.axhspan(0, eps, color="grey", alpha=0.25, lw=0)
    ax_d.axhspan(1 - eps, 1, color="grey", alpha=0.25, lw=0, label=f"unhealthy (eps={eps:g})")
    ax_d.set_ylim(0, 1)
    ax_d.set_ylabel("mean D output")
    ax_d.set_xlabel("step")
    for ax in (ax_loss, ax_d):
        if collapsed_at is not None:
            ax.axvline(collapsed_at, color="black", ls="--", lw=1)
    if collapsed_at is not None:
        ax_d.text(collapsed_at, 0.5, f" collapse at {collapsed_at}", fontsize=8)
    ax_d.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

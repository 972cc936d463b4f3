"""Everything a run writes into its folder (docs/design.md, "A run folder"), in one place.

.pumpgan-claim         host:pid of the run that owns the folder, created exclusively (`claim`)
metrics.csv            one row per step (METRICS columns), appended in chunks
eval.csv               one row per in-run evaluation (eval.every): step, swd, swd_<side> per level
samples/step_NNNNNN.png, final.png   fixed-noise grids
checkpoints/last.pt    full training state and its sha256 (checked on resume), atomically replaced
summary.json           status, score and timing, rewritten atomically whenever they change
curves.png             losses and D means over steps with the eps band and the collapse
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from gan.checksum import sealed
from gan.errors import UserError
from gan.files import atomic_write, save_grid
from gan.run.loggers import Ending, Loggers

METRICS = ("step", "time_s", "loss_d", "loss_g", "d_real", "d_fake", "d_fake_after")
# summary.json's status (docs/design.md, "A run folder"), in gan.compare's order
STATUSES = ("completed", "collapsed", "pruned", "failed", "interrupted", "running")


CLAIM = ".pumpgan-claim"  # created exclusively by the one run that writes into a folder


def claim(path: Path, empty: bool = False) -> None:
    """Make `path` this process's run folder, or refuse with a UserError: the first run to
    create its CLAIM file (O_EXCL: atomic, whoever else tries at the same moment) owns it, so
    two runs never write into one folder. empty: also refuse a folder that already holds
    anything (checked before Hydra writes its .hydra/ and run.log, see `ClaimRunFolder`)."""
    path.mkdir(parents=True, exist_ok=True)
    marker, me = path / CLAIM, owner()
    if marker.is_file() and marker.read_text().strip() == me:
        return  # claimed already by this process (the Hydra callback, then train)
    held = (
        f"{path} already holds a run and pumpgan never writes into another run's folder. "
        f"Leave hydra.run.dir at its default (a new folder per run) or choose a new one; to "
        f"continue that run, pass resume={path} (its continuation goes to a new folder)."
    )
    if empty and any(path.iterdir()):
        raise UserError(held)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        raise UserError(f"{held} (claimed by {marker.read_text().strip() or '?'})") from None
    with os.fdopen(fd, "w") as f:
        f.write(me + "\n")


def load_summary(run_dir: Path) -> dict[str, Any]:
    """A run folder's summary.json; OSError when it is missing, ValueError when it is not a
    JSON object (a file cut short, or not pumpgan's)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    if not isinstance(summary, dict):
        raise ValueError("not a JSON object")
    return summary


def read_summary(run_dir: Path) -> dict[str, Any]:
    """A run folder's summary.json, {} when it is missing or cannot be read (yet)."""
    try:
        return load_summary(run_dir)
    except (OSError, ValueError):
        return {}


def owner() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.summary_path = path / "summary.json"
        self.metrics_path = path / "metrics.csv"
        self.eval_path = path / "eval.csv"
        self.samples_dir = path / "samples"
        self.checkpoint_path = path / "checkpoints" / "last.pt"
        self.summary: dict[str, Any] = {}
        self.loggers = Loggers([])  # the run's (gan/run/loggers.py) once it is created

    def check_new(self) -> None:
        """Refuse a folder that holds a run, then claim it for this one (`claim`)."""
        if self.summary_path.exists():
            raise UserError(
                f"{self.path} already holds a run (its summary.json exists) and pumpgan never "
                f"overwrites a run folder. Leave hydra.run.dir at its default (a new folder per "
                f"run) or choose a new one; to continue that run, pass resume={self.path}."
            )
        claim(self.path)

    def create(
        self,
        summary: dict[str, Any],
        metrics_rows: list[list[Any]] | None = None,
        loggers: Loggers | None = None,
    ) -> None:
        """Start a run: write the first summary and the metrics header (plus rows carried over
        from a resumed run), and give the `loggers` those rows."""
        self.check_new()
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(METRICS)
            writer.writerows(metrics_rows or [])
        self.loggers = loggers or Loggers([])
        self._log_scalars(metrics_rows or [])
        self.update_summary(**summary)

    def update_summary(self, **fields: Any) -> None:
        self.summary.update(fields, updated_at=now_iso())

        text = json.dumps(self.summary, indent=2, default=str) + "\n"
        try:
            atomic_write(self.summary_path, lambda tmp: tmp.write_text(text))
        except OSError as e:
            if e.errno != errno.ENOSPC or not self.summary_path.is_file():
                raise
            # a full disk has no room for a second copy; the file's own blocks take the new
            # text (a summary grows by a few hundred bytes at most), so the run's status is
            # never left at `running`
            with open(self.summary_path, "r+") as f:
                f.write(text)
                f.truncate()

    def append_metrics(self, rows: list[list[Any]]) -> None:
        with open(self.metrics_path, "a", newline="") as f:
            csv.writer(f).writerows(rows)
        self._log_scalars(rows)

    def append_eval(self, step: int, quality: Mapping[str, Any]) -> None:
        """One evaluation's SWD (gan.run.quality.swd's dict) as a row of eval.csv and as TensorBoard
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
        levels = {f"quality/swd_{side}": v for side, v in quality["swd_levels"].items()}
        self.loggers.scalars([(step, {"quality/swd": quality["swd"], **levels})])

    def _log_scalars(self, rows: list[list[Any]]) -> None:
        """The same rows for the loggers (train/loss_d, train/d_real, ...)."""
        names = [f"train/{k}" for k in METRICS[2:]]
        points = [(int(r[0]), dict(zip(names, map(float, r[2:]), strict=True))) for r in rows]
        self.loggers.scalars(points)

    def save_samples(
        self,
        images: torch.Tensor,
        step: int,
        name: str | None = None,
        diversity: float | None = None,
    ) -> None:
        """samples/step_NNNNNN.png (or `name`), and the same grid (and its diversity) for the
        loggers."""
        grid = save_grid(images, self.samples_dir / (name or f"step_{step:06d}.png"))
        self.loggers.image("samples", grid, step)
        if diversity is not None:
            self.loggers.scalars([(step, {"quality/diversity": diversity})])

    def end(self, params: dict[str, Any], metrics: dict[str, float], status: str) -> None:
        """The loggers' last word: the run's settings (`hparams`), its final numbers, its output
        files and its status; then they are closed."""
        outputs = ["summary.json", "curves.png", "samples/final.png", "checkpoints/generator.pt"]
        files = [self.path / f for f in [*outputs, "checkpoints/best.pt"]]  # those that exist
        self.loggers.end(Ending(params, metrics, files, status))
        self.loggers.close()

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """checkpoints/last.pt: `state` and its digest (gan.checksum.sealed), which
        read_checkpoint checks."""
        # serialised in memory first: torch.save into a file on a full disk fails with its own
        # RuntimeError ("unexpected pos"), a plain write with the OSError that says why
        buffer = io.BytesIO()
        torch.save(sealed(state), buffer)
        atomic_write(self.checkpoint_path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def hparams(config: dict[str, Any], run_dir: Path) -> dict[str, float | str | bool]:
    """The settings a run's HParams row shows, the same keys for every run: the option of each
    config group (model, optim, augment, ...; from .hydra/hydra.yaml), the value of every key
    that a study in sweeps/ searches (`searched_keys`), and the run's own command-line overrides
    (a trial's: its sampled parameters and the study's fixed values). `config`: flattened."""
    from gan.run.command import group_options, read_yaml, searched_keys

    params: dict[str, Any] = dict(group_options(run_dir, config))
    params |= {k: config[k] for k in searched_keys() if k in config}
    overrides = read_yaml(run_dir / ".hydra" / "overrides.yaml")
    pairs = [str(o).split("=", 1) for o in (overrides if isinstance(overrides, list) else [])]
    params |= {k.lstrip("+~"): v for k, v in (p for p in pairs if len(p) == 2)}
    params.pop("hydra.run.dir", None)
    return {k: hparam_value(str(v)) for k, v in sorted(params.items())}


def hparam_value(text: str) -> float | str | bool:
    """A setting as TensorBoard's HParams take it: a number or a bool where it reads as one,
    else the text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text


def read_metrics(path: Path) -> dict[str, list[float]]:
    """metrics.csv as columns of floats."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in METRICS}


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), set up on first use: importing
    matplotlib takes a while, and most of a run draws nothing. curves.png and gan.compare's
    figures draw with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    path: Path,
    metrics: dict[str, list[float]],
    eps: float,
    collapsed_at: int | None,
    title: str,
    loss: str = "bce",
) -> None:
    """curves.png: losses (top; `loss`: the run's optim.loss) and both D means with the eps band
    (bottom)."""
    plt = pyplot()
    steps = metrics["step"]
    fig, (ax_loss, ax_d) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax_loss.plot(steps, metrics["loss_d"], label="loss D", lw=0.8)
    ax_loss.plot(steps, metrics["loss_g"], label="loss G", lw=0.8)
    ax_loss.set_ylabel(f"{loss} loss")
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

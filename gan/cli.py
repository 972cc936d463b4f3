"""pumpgan's command line: compose the config with Hydra, train one GAN, return its score.

`python run.py ARGS` and, once pumpgan is installed (`pip install -e .`, or `uv sync`), the
console script `pumpgan ARGS` both call `main`. The config comes from the project's conf/ from
whatever folder the command is started in; run folders go to outputs/ below that folder.

uv run python run.py                                   # the defaults
uv run python run.py optim.gen_lr=2e-3 model=medium    # any key of any group
uv run python run.py resume=outputs/DATE/TIME train.steps=4000
uv run python run.py -m hydra/sweeper=optuna           # a study (sweeps/)
uv run python run.py --help                            # the config groups and the config
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, cast

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gan import interrupts
from gan.config import UserError, drop_removed_keys
from gan.pruning import TrialReporter
from gan.runfolder import claim
from gan.sweep import trial_of_job
from gan.train import train

log = logging.getLogger("run")

# the project's conf/, beside gan/: pumpgan runs from its checkout (`pip install -e .` installs
# it so). An absolute path: Hydra would look for a relative one inside the package `gan`.
CONF = Path(__file__).resolve().parents[1] / "conf"
# what Hydra may instantiate from the config: pumpgan's own callback (hydra.callbacks)
TRUSTED = ["gan.cli.ClaimRunFolder"]


def main() -> None:
    """`python run.py` and the `pumpgan` console script."""
    interrupts.install()  # before the sweeper opens its study: see gan/interrupts.py
    try:
        run()
    except KeyboardInterrupt:
        # a sweep's Ctrl-C, once the running trials are checkpointed and queued again (the
        # sweeper logged it): a line, not a traceback
        print(
            "Interrupted: the cut-short trials are queued again; rerun the same command to "
            "continue the study.",
            file=sys.stderr,
        )
        sys.exit(130)


@hydra.main(config_path=str(CONF), config_name="config", execution_whitelist=TRUSTED)
def run(cfg: DictConfig) -> float:
    """One training run (a trial, in a sweep); its score is what the sweeper optimises."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        if cfg.resume:
            cfg = resumed_config(cfg, list(hc.overrides.task))
        trial = trial_of_job(hc)
        # in a study, every evaluation's SWD goes to the trial and its pruner (gan/pruning.py)
        report = None
        if trial and cfg.eval.every:
            report = TrialReporter(**trial, pruner=hc.sweeper.get("pruner"))
        run_dir = Path(hc.runtime.output_dir)
        score = train(
            cfg,
            run_dir,
            progress_bar=False if multirun else None,
            extra_summary={"optuna": trial} if trial else None,
            on_eval=report,
        )
        # as Optuna expects of a pruned trial (a collapse found at the same step wins)
        if report is not None and json_field(run_dir / "summary.json", "status") == "pruned":
            raise optuna.TrialPruned(f"pruned at step {report.pruned_at}")
        return score
    except UserError as e:
        if multirun:
            raise  # the sweeper records the trial as failed and goes on
        log.error("%s", e)
        sys.exit(2)
    except KeyboardInterrupt:
        if multirun:
            raise  # the sweeper queues the trial again
        sys.exit(130)  # the run logged where it stopped and how to resume it
    except OSError as e:
        if multirun:
            raise
        log.error("%s", write_error(e, Path(hc.runtime.output_dir)))
        sys.exit(1)


def write_error(e: OSError, run_dir: Path) -> str:
    """One paragraph for a run that could not write (a full disk, a lost mount, permissions)."""
    step = json_field(run_dir / "summary.json", "steps_done")
    checkpoint = run_dir / "checkpoints" / "last.pt"
    kept = (
        f"its last checkpoint ({checkpoint}) is intact and resume={run_dir} continues from it"
        if checkpoint.is_file()
        else "it had saved no checkpoint yet, so start it again"
    )
    return (
        f"The run stopped at step {step}: could not write {e.filename or 'a file'} "
        f"({e.strerror or e}). summary.json says `failed`; {kept} once the cause is fixed "
        f"(e.g. free space on the disk of {run_dir})."
    )


def json_field(path: Path, key: str) -> object:
    try:
        return json.loads(path.read_text()).get(key)
    except (OSError, ValueError):
        return None


class ClaimRunFolder(Callback):
    """Claims a single run's folder (hydra.run.dir) before Hydra writes .hydra/ and run.log
    into it: a folder that holds anything, or that another run claims at the same moment, is
    refused with nothing written (gan.runfolder.claim). Trials of a sweep are claimed by the
    run itself (train), in a folder that only their trial number names."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            claim(Path(config.hydra.run.dir), empty=True)
        except UserError as e:
            print(f"Error: {e}", file=sys.stderr)
            sys.exit(2)


def resumed_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The saved config of the run being resumed, with this command's value overrides on top
    (e.g. a larger train.steps). Changing a config group would not fit the checkpoint."""
    source = Path(cfg.resume)
    saved_path = source / ".hydra" / "config.yaml"
    if not saved_path.is_file():
        raise UserError(
            f"resume={str(source)!r} is not a run folder: {saved_path} is missing. "
            f"Pass the folder a run printed at its start (outputs/DATE/TIME)."
        )
    groups = ("model", "optim", "augment", "hardware", "data")
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    changed = [o for o, k in zip(overrides, keys, strict=True) if k in groups]
    if changed:
        raise UserError(
            f"resume cannot change a config group ({', '.join(changed)}): the "
            f"checkpoint holds that run's nets. Override single values instead, "
            f"e.g. train.steps=4000."
        )
    reshaped = [o for o, k in zip(overrides, keys, strict=True) if k.startswith("model.")]
    if reshaped:
        raise UserError(
            f"resume cannot change the model ({', '.join(reshaped)}): the checkpoint holds "
            f"nets of the shapes {saved_path} gives, and weights of one width or image size do "
            f"not fit another. Drop the model.* overrides, or start a new run with them."
        )
    values = [o for o in overrides if not o.startswith("resume=")]
    merged = cast(
        DictConfig,
        OmegaConf.merge(cfg, saved_config(saved_path), OmegaConf.from_dotlist(values)),
    )
    merged.resume = str(source)
    # record what actually runs next to Hydra's copy of this command's config
    OmegaConf.save(
        merged, Path(HydraConfig.get().runtime.output_dir) / ".hydra" / "resumed_config.yaml"
    )
    return merged


def saved_config(path: Path) -> DictConfig:
    """A run's .hydra/config.yaml, without keys that earlier pumpgan versions wrote and this one
    no longer has (so that runs of those versions can be resumed)."""
    return drop_removed_keys(cast(DictConfig, OmegaConf.load(path)))

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

import logging
import os
import shutil
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.errors import (
    CompactHydraException,
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan.config import (
    RESUME_FREE,
    RESUME_KEEPS,
    check_keys,
    flatten,
    register,
    saved_as_now,
    validate,
)
from gan.errors import UserError
from gan.run import interrupts
from gan.run.command import CONF, run_choices
from gan.run.folder import CLAIM, RunFolder, claim, read_summary
from gan.run.train import train
from gan.study.errors import NoStudy, StudyRefused
from gan.study.pruning import TrialReporter
from gan.study.storage import trial_of_job

log = logging.getLogger("run")
register()  # the schema conf/config.yaml composes

# what Hydra may instantiate from the config: pumpgan's own callback (hydra.callbacks)
TRUSTED = ["gan.cli.ClaimRunFolder"]


def main() -> None:
    """`python run.py` and the `pumpgan` console script."""
    interrupts.install()  # before the sweeper opens its study: see gan/run/interrupts.py
    # Hydra raises instead of printing its own report, so that a refused command line is one
    # paragraph (`refusal`) and exit 2; any other error keeps its whole traceback
    os.environ["HYDRA_FULL_ERROR"] = "1"
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
    except REFUSED as e:
        print(f"Error: {refusal(e)}", file=sys.stderr)
        sys.exit(2)


# what a command line can get wrong before anything runs: a key or option that does not exist,
# a value of the wrong type, a study's settings, a sweeper key (InstantiationException)
REFUSED = (
    UserError,
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
    InstantiationException,
    CompactHydraException,
    OmegaConfBaseException,
)


def refusal(e: BaseException) -> str:
    """One paragraph out of Hydra's and OmegaConf's multi-line messages: the lines that say what
    is wrong, without the search path, the object types or the advice to add keys with `+`."""
    if isinstance(e, UserError | StudyRefused | NoStudy):
        return str(e)
    cause = e.__cause__ if isinstance(e.__cause__, OmegaConfBaseException | ValueError) else None
    lines: list[str] = []
    for text in (str(e), str(cause or "")):
        for line in text.splitlines():
            if line.startswith("Config search path") or "Set the environment variable" in line:
                break
            if line.startswith("\t") and lines:  # the options of a group, one per line
                lines[-1] += (" " if lines[-1].endswith(":") else ", ") + line.strip()
            elif line.strip() and not line.startswith((" ", "To append")):
                lines.append(line.strip().rstrip("."))
    said = ": ".join(dict.fromkeys(lines)).replace(":: ", ": ")
    return (
        f"{said.rstrip('.')}. `python run.py --help` lists every config group with its options "
        "and every key with its default; nothing was run or written."
    )


@hydra.main(config_path=str(CONF), config_name="config", execution_whitelist=TRUSTED)
def run(cfg: DictConfig) -> float:
    """One training run (a trial, in a sweep); its score is what the sweeper optimises."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    run_dir = Path(hc.runtime.output_dir)
    try:
        if cfg.resume:
            cfg = resumed_config(cfg, list(hc.overrides.task), dict(hc.runtime.choices))
            # what actually runs, next to Hydra's copy of this command's config
            OmegaConf.save(cfg, run_dir / ".hydra" / "resumed_config.yaml")
        check_keys(cfg)
        trial = trial_of_job(hc)
        # in a study, every evaluation's SWD goes to the trial and its pruner (gan/study/pruning.py)
        report = None
        if trial and cfg.eval.every:
            report = TrialReporter(**trial, pruner=hc.sweeper.get("pruner"))
        score = train(
            cfg,
            run_dir,
            progress_bar=False if multirun else None,
            extra_summary={"optuna": trial} if trial else None,
            on_eval=report,
        )
        # as Optuna expects of a pruned trial (a collapse found at the same step wins)
        if report is not None and read_summary(run_dir).get("status") == "pruned":
            raise optuna.TrialPruned(f"pruned at step {report.pruned_at}")
        return score
    except UserError as e:
        if multirun:
            raise  # the sweeper records the trial as failed and goes on
        log.error("%s", e)
        remove_unstarted(run_dir)  # a refused command leaves no folder behind
        sys.exit(2)
    except KeyboardInterrupt:
        mark_unstarted(run_dir)
        if multirun:
            raise  # the sweeper queues the trial again
        sys.exit(130)  # the run logged where it stopped and how to resume it
    except OSError as e:
        if multirun:
            raise
        log.error("%s", write_error(e, run_dir))
        sys.exit(1)


# the config groups whose options hold a checkpoint's nets, optimisers and data: a resume keeps them
RESUME_GROUPS = ("model", "optim", "augment", "hardware", "data")

# what Hydra and the folder's claim put into a run folder before the run starts training
BEFORE_TRAINING = {".hydra", "run.log", CLAIM}


def remove_unstarted(run_dir: Path) -> None:
    """Remove the folder of a single run that was refused before it wrote anything of its own.
    Its claim (gan.run.folder.claim, on an empty or new folder) makes everything in it this
    run's; the date folder above it goes too when that leaves it empty."""
    if not run_dir.is_dir() or any(p.name not in BEFORE_TRAINING for p in run_dir.iterdir()):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    with suppress(OSError):
        run_dir.parent.rmdir()


def mark_unstarted(run_dir: Path) -> None:
    """A run stopped (Ctrl-C, SIGTERM) before it began training has no summary.json yet: write
    one that says so, so that gan.compare and a study's trials.csv read `interrupted`."""
    if not run_dir.is_dir() or (run_dir / "summary.json").exists():
        return
    folder = RunFolder(run_dir)
    with suppress(OSError):
        folder.update_summary(
            status="interrupted",
            steps_done=0,
            run_dir=str(run_dir),
            error="interrupted before training started",
        )


def write_error(e: OSError, run_dir: Path) -> str:
    """One paragraph for a run that could not write (a full disk, a lost mount, permissions)."""
    step = read_summary(run_dir).get("steps_done")
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


class ClaimRunFolder(Callback):
    """Checks a single run's config, then claims its folder (hydra.run.dir), before Hydra
    writes .hydra/ and run.log into it: a config with unknown keys or impossible values, a
    folder that holds anything, or one that another run claims at the same moment, is refused
    with nothing written (gan.run.folder.claim). Trials of a sweep are claimed by the run itself
    (train), in a folder that only their trial number names; a sweep's unknown keys are refused
    before its first trial."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_keys(config)
            if not config.resume:  # a resumed run's values are its saved config's (run())
                validate(config)
            claim(Path(config.hydra.run.dir), empty=True)
        except UserError as e:
            print(f"Error: {e}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_keys(config)


def resumed_config(
    cfg: DictConfig, overrides: list[str], choices: dict[str, Any] | None = None
) -> DictConfig:
    """The saved config of the run being resumed, with this command's value overrides on top
    (e.g. a larger train.steps). Changing a config group would not fit the checkpoint; naming
    the option the saved run chose is no change (a population's segments repeat their study's
    options), and selections of the other groups (`choices`: sweep, logger, debug) select what
    this command composed, not values of the run."""
    source = Path(cfg.resume)
    saved_path = source / ".hydra" / "config.yaml"
    if not saved_path.is_file():
        raise UserError(
            f"resume={str(source)!r} is not a run folder: {saved_path} is missing. "
            f"Pass the folder a run printed at its start (outputs/DATE/TIME)."
        )
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    saved_choices = run_choices(source)
    changed = [
        o
        for o, k in zip(overrides, keys, strict=True)
        if k in RESUME_GROUPS and o.split("=", 1)[-1] != saved_choices.get(k)
    ]
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
    groups = {*RESUME_GROUPS, *(choices or {})}
    values = [o for o, k in zip(overrides, keys, strict=True) if k != "resume" and k not in groups]
    try:
        saved = saved_config(saved_path)
        merged = cast(DictConfig, OmegaConf.merge(cfg, saved, OmegaConf.from_dotlist(values)))
    except (OmegaConfBaseException, ValueError) as e:
        raise UserError(
            f"resume={str(source)!r}: {saved_path} does not fit this pumpgan's config "
            f"({type(e).__name__}: {str(e).splitlines()[0]}). Resume a run folder that pumpgan "
            f"wrote, with its .hydra/config.yaml as the run left it."
        ) from None
    fixed = resume_changes(saved, merged)
    if fixed:
        raise UserError(
            f"resume cannot change {'; '.join(fixed)}: the checkpoint's random state, data order, "
            f"fixed noise and nets were made with the saved values, so the resumed run would not "
            f"train with what its config shows. Drop these overrides, or start a new run with "
            f"them. A resume may change the rest: train.steps and the other train cadences, the "
            f"optim values (learning rates, betas, penalties), augment, score, eval, hardware."
        )
    merged.resume = str(source)
    merged.logger = cfg.logger  # the continuation logs where this command says
    return merged


def resume_changes(saved: DictConfig, merged: DictConfig) -> list[str]:
    """`key: saved -> new` for each RESUME_KEEPS key whose value the resume would change."""
    before, after = (
        flatten(cast(dict[str, Any], OmegaConf.to_container(c, resolve=True)))
        for c in (saved, merged)
    )
    kept = [
        k
        for k in after
        if any(k == p or k.startswith(f"{p}.") for p in RESUME_KEEPS) and k not in RESUME_FREE
    ]
    # a key the saved config lacks (an earlier pumpgan's) had its default then as now
    return [
        f"{k}: {before[k]!r} -> {after[k]!r}" for k in kept if before.get(k, after[k]) != after[k]
    ]


def saved_config(path: Path) -> DictConfig:
    """A run's .hydra/config.yaml, without keys that earlier pumpgan versions wrote and this one
    no longer has (so that runs of those versions can be resumed)."""
    return saved_as_now(cast(DictConfig, OmegaConf.load(path)))

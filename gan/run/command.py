"""The command that reproduces a run, and a run's settings as a config file that runs.

A run's own config is Hydra's composition of conf/config.yaml, the command's overrides
(`.hydra/overrides.yaml`) and, for a trial of a study, the study's file from sweeps/. A trial of
`-m hydra/sweeper=optuna` composes sweeps/optuna.yaml without naming it (conf/config.yaml picks
the study by the sweeper's name), so its overrides alone would compose another config (the
defaults' train.steps, no score.min_diversity). `command` adds what selected the study file
(`hydra/sweeper=optuna`, or `sweep=NAME`; from `.hydra/hydra.yaml`), so that `python run.py`
with it composes the run's config exactly (the sweeper itself is not used by a single run);
gan.compare's report, its CSV, a study's trials.csv, sweep.log, optimization_results.yaml and
confirm.csv all give this command.

`export` writes the config that ran as a primary config of its own, for
`python run.py --config-dir DIR --config-name NAME`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from gan.config import REMOVED_KEYS

CHECKOUT = Path(__file__).resolve().parents[2]  # the project's folder, when gan/ is in one
# the checkout's conf/, beside gan/, where users edit the config groups and the studies (sweeps/,
# as conf/sweep): pumpgan run from its checkout (`python run.py`, `pip install -e .`, `uv sync`);
# installed from a wheel (`pip install .`), the copy the wheel ships as gan/conf. An absolute
# path: Hydra would look for a relative one inside the package `gan`.
IN_CHECKOUT = (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "conf").is_dir()
CONF = CHECKOUT / "conf" if IN_CHECKOUT else CHECKOUT / "gan" / "conf"
# the program of the commands pumpgan prints: run.py in a checkout, the console script otherwise
PROGRAM = ["python", "run.py"] if IN_CHECKOUT else ["pumpgan"]


def command(overrides: list[str], choices: dict[str, Any] | None = None) -> str:
    """`python run.py OVERRIDES` (`pumpgan OVERRIDES` installed from a wheel), shell-quoted.
    `choices`: the run's config group choices (hydra.runtime.choices); when the run composed a
    study file of conf/sweep/ that its overrides do not name, what selected it comes first: the
    sweeper (conf/config.yaml's `optional sweep: ${hydra/sweeper}`), or else `sweep=NAME`."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    sweep, sweeper = (str((choices or {}).get(k)) for k in ("sweep", "hydra/sweeper"))
    first = []
    if "sweep" not in keys and study_file(sweep).is_file():
        first = [f"hydra/sweeper={sweeper}" if sweep == sweeper else f"sweep={sweep}"]
    return shlex.join([*PROGRAM, *first, *overrides])


def study_file(name: str) -> Path:
    return CONF / "sweep" / f"{name}.yaml"


def searched_keys() -> list[str]:
    """The keys (and config groups) that the studies in conf/sweep/ search, in file order."""
    keys: dict[str, None] = {}
    for path in sorted((CONF / "sweep").glob("*.yaml")):
        sweeper = ((read_yaml(path) or {}).get("hydra") or {}).get("sweeper") or {}
        keys |= dict.fromkeys(str(k) for k in (sweeper.get("params") or {}))
    return list(keys)


def run_command(run_dir: Path) -> str | None:
    """The command that reproduces the run in `run_dir` (None without its .hydra/ files)."""
    overrides = read_yaml(run_dir / ".hydra" / "overrides.yaml")
    if not isinstance(overrides, list):
        return None
    return command([str(o) for o in overrides], run_choices(run_dir))


def run_choices(run_dir: Path) -> dict[str, Any]:
    """The run's config group choices (.hydra/hydra.yaml's hydra.runtime.choices; {} without)."""
    hydra = read_yaml(run_dir / ".hydra" / "hydra.yaml")
    hydra = hydra.get("hydra") if isinstance(hydra, dict) else None
    choices = (hydra.get("runtime") or {}).get("choices") if isinstance(hydra, dict) else None
    return choices if isinstance(choices, dict) else {}


def group_options(run_dir: Path, config: dict[str, Any]) -> dict[str, str]:
    """The option of each config group of the run that is a section of its `config` (flattened):
    {"model": "small", "augment": "seed", ...}; not hydra/*, nor sweep (a study file sets keys
    all over the config)."""
    return {
        str(g): str(c)
        for g, c in run_choices(run_dir).items()
        if c is not None and any(k.startswith(f"{g}.") for k in config)
    }


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def ran_config(run_dir: Path) -> dict[str, Any] | None:
    """The config the run trained with: a resumed run's merged config, else Hydra's."""
    for name in ("resumed_config.yaml", "config.yaml"):
        config = read_yaml(run_dir / ".hydra" / name)
        if isinstance(config, dict):
            return config
    return None


def export(run_dir: Path, out: Path, about: str) -> str:
    """Write the settings run `run_dir` trained with to `out` (a .yaml file) as a primary config
    on top of pumpgan's own (`defaults: [config, _self_]`); returns the command that runs it.
    `about` says where the settings come from (the file's first comment)."""
    config = ran_config(run_dir)
    if config is None:
        raise FileNotFoundError(f"{run_dir}/.hydra/config.yaml cannot be read")
    config = {k: v for k, v in config.items() if k != "resume"}  # the settings, a new run
    for dotted in REMOVED_KEYS:  # written by an earlier pumpgan, unknown to this one
        group, key = dotted.split(".")
        (config.get(group) or {}).pop(key, None)
    runs = shlex.join(
        [*PROGRAM, "--config-dir", str(out.parent.resolve()), "--config-name", out.stem]
    )
    header = (
        f"# {about}\n# Exported by gan.compare from {run_dir}. Every key of the run it came from;\n"
        f"# on top of pumpgan's conf/config.yaml. Run it (any key can still be overridden):\n"
        f"#   {runs}\n"
    )
    body = yaml.safe_dump({"defaults": ["config", "_self_"], **config}, sort_keys=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + body)
    return runs

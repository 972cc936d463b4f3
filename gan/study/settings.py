"""What a study keeps fixed: its search space (parsed from the sweep's overrides), its fixed
settings and its precision, recorded in the study at its first sweep; a later sweep, or a confirm
sweep of it, with others is refused, naming each key that differs (ChangedStudy)."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    distribution_to_json,
    json_to_distribution,
)

from gan.config import flatten, implied_values
from gan.run import hardware
from gan.study.errors import ChangedStudy

log = logging.getLogger(__name__)

# study user attrs: the search space (Optuna's JSON of each distribution) and the fixed settings
# (dotted key -> value) of the study's first sweep, which every later sweep of it must repeat
SPACE, SETTINGS = "pumpgan_search_space", "pumpgan_settings"
# study user attr: {"precision": "fp32" or "bf16", "channels_last": bool}, every trial's
PRECISION = "pumpgan_precision"
# config keys that say where or how fast a trial runs, or where it logs, not what it computes:
# neither recorded nor compared (the machines of one study may differ in them)
NOT_SETTINGS = ("hydra", "hardware", "resume", "data.cache_dir", "logger")


def search_space(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """Sweep overrides -> (Optuna distributions, fixed values); the plugin's syntax:
    `choice(a, b)`, `interval(lo, hi)`, `tag(log, interval(lo, hi))`, `range(a, b)`."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        value = create_optuna_distribution_from_override(override)
        name = override.get_key_element()
        if isinstance(value, BaseDistribution):
            space[name] = value
            fixed.pop(name, None)
        else:
            fixed[name] = value
            space.pop(name, None)
    return space, fixed


def describe(dist: BaseDistribution | None) -> str:
    """A distribution in the sweep syntax where it has one."""
    if dist is None:
        return "(not searched)"
    if isinstance(dist, CategoricalDistribution):
        return f"choice({', '.join(map(str, dist.choices))})"
    if isinstance(dist, FloatDistribution) and dist.step is None:
        interval = f"interval({dist.low}, {dist.high})"
        return f"tag(log, {interval})" if dist.log else interval
    return str(dist)


def study_settings(config: DictConfig, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The fixed settings of a sweep's trials: the composed config (the study's values and the
    fixed overrides applied), as dotted key -> value, less the swept keys and NOT_SETTINGS."""
    task = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
    values = flatten(cast(dict[str, Any], OmegaConf.to_container(task, resolve=True)))
    skipped = (*NOT_SETTINGS, *space)
    settings = {
        k: v for k, v in values.items() if not any(k == s or k.startswith(f"{s}.") for s in skipped)
    }
    return cast(dict[str, Any], json.loads(json.dumps(settings)))  # as the storage returns it


def changed_settings(
    old_space: dict[str, str],
    old_settings: dict[str, Any],
    new_space: dict[str, str],
    new_settings: dict[str, Any],
) -> list[str]:
    """`key: old -> new` for each swept key whose distribution differs, then for each fixed
    setting (not swept in either) whose value differs."""
    spaces = [{k: json_to_distribution(v) for k, v in s.items()} for s in (old_space, new_space)]
    changes = [
        f"{k}: {describe(spaces[0].get(k))} -> {describe(spaces[1].get(k))}"
        for k in sorted(spaces[0].keys() | spaces[1].keys())
        if spaces[0].get(k) != spaces[1].get(k)
    ]
    unset = object()
    swept = old_space.keys() | new_space.keys()
    # a key added to pumpgan after the study recorded its settings had the value it implies
    implied = implied_values() if old_settings else {}
    for k in sorted((old_settings.keys() | new_settings.keys()) - swept):
        old = old_settings.get(k, implied.get(k, unset))
        new = new_settings.get(k, unset)
        if old != new:
            shown = ["(not set)" if v is unset else json.dumps(v) for v in (old, new)]
            changes.append(f"{k}: {shown[0]} -> {shown[1]}")
    return changes


def keep_settings(
    study: optuna.Study,
    storage: str,
    space: dict[str, BaseDistribution],
    settings: dict[str, Any],
) -> None:
    """Record the search space and fixed settings of a study's first sweep in the study; raise
    ChangedStudy, naming what differs, for a later sweep with others (its trials would not
    compare with the study's)."""
    new = {SPACE: {k: distribution_to_json(d) for k, d in space.items()}, SETTINGS: settings}
    old = study.user_attrs
    if SPACE not in old:
        # SPACE last: it marks the record complete, so a sweep starting at the same moment never
        # reads a search space without its settings
        for attr in (SETTINGS, SPACE):
            study.set_user_attr(attr, new[attr])
        old = study.user_attrs  # a sweep that recorded others at the same moment may have won
    changes = changed_settings(old.get(SPACE, {}), old.get(SETTINGS, {}), new[SPACE], settings)
    if changes:
        raise ChangedStudy(
            f"Study {study.study_name!r} in {storage} was started with other settings than this "
            f"sweep's, so their trials would not compare: {'; '.join(changes)}. To continue the "
            "study, rerun it with its own settings. For a new study, choose a new hydra.sweep.dir "
            "(a new folder has a new optuna.db), or, where the study lives in "
            "hydra.sweeper.storage, a new hydra.sweeper.study_name together with a new "
            "hydra.sweep.dir."
        )


def keep_source_settings(
    source: optuna.Study, config: DictConfig, space: dict[str, BaseDistribution]
) -> None:
    """Raise ChangedStudy, naming what differs, for a confirm sweep (search space `space`)
    whose fixed settings differ from those its source study recorded, the seed excepted: its
    reruns would not confirm the study. A study that recorded none is only warned about."""
    recorded = source.user_attrs
    if SPACE not in recorded:
        log.warning(
            "Study %r recorded no settings (an earlier pumpgan ran it): the confirm sweep "
            "cannot check that it runs the study's fixed settings",
            source.study_name,
        )
        return
    old_settings = {k: v for k, v in recorded.get(SETTINGS, {}).items() if k != "seed"}
    new_space = {k: distribution_to_json(d) for k, d in space.items() if k != "seed"}
    new_settings = study_settings(config, space)
    changes = changed_settings(recorded[SPACE], old_settings, new_space, new_settings)
    if changes:
        raise ChangedStudy(
            f"Study {source.study_name!r} ran with other settings than this confirm "
            f"sweep's, so the reruns would not confirm it: {'; '.join(changes)}. Run "
            "the confirm sweep with the study's own settings (its sweeps/ file)."
        )


def study_precision(
    study: optuna.Study,
    config: DictConfig,
    space: dict[str, BaseDistribution],
    inherited: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """hardware.precision and hardware.channels_last for every trial of the study, so that its
    trials differ in their settings only. Decided once, at the study's first sweep: the
    sweep's own values, or with precision=auto what gan.run.hardware.setup picks here (timed once,
    on the CPU; `inherited`: a confirm study takes its source study's), recorded in the study;
    a later sweep with auto reuses the record and one that asks for another is refused."""
    if any(k.startswith("hardware.") for k in space):
        return {}  # the study searches the hardware itself
    hw = config.hardware
    asked = None
    if hw.precision != "auto":
        asked = {"precision": str(hw.precision), "channels_last": bool(hw.channels_last)}
    recorded = study.user_attrs.get(PRECISION)
    if recorded is None:
        decided = asked or inherited
        if decided is None:
            decided = auto_precision(study, config)
        study.set_user_attr(PRECISION, decided)
        recorded = study.user_attrs[PRECISION]  # a sweep that recorded at the same moment won
    if asked is not None and asked != recorded:
        raise ChangedStudy(
            f"Study {study.study_name!r} trains every trial with hardware.precision="
            f"{recorded['precision']} hardware.channels_last={recorded['channels_last']}, decided "
            f"at its first sweep; this sweep asks for hardware.precision={asked['precision']} "
            f"hardware.channels_last={asked['channels_last']}, so its trials would not compare. "
            "Rerun it with hardware.precision=auto (the study's own choice), or start a new "
            "study in a new hydra.sweep.dir."
        )
    return {
        "hardware.precision": recorded["precision"],
        "hardware.channels_last": recorded["channels_last"],
    }


def auto_precision(study: optuna.Study, config: DictConfig) -> dict[str, Any]:
    """What hardware=auto picks on this machine (timed once, in the sweep process), for a new
    study whose sweep names no precision."""
    chosen = hardware.setup(config.hardware, config.model, config.train.batch_size)
    precision = "bf16" if chosen.bf16 else "fp32"
    log.info(
        "Study %r trains every trial in %s%s (hardware.precision=auto, decided once)",
        study.study_name,
        precision,
        f", timed at {chosen.timings} s/step" if chosen.timings else "",
    )
    return {"precision": precision, "channels_last": chosen.channels_last}

"""Population-based training as a study (gan/study/population.py, `hydra.sweeper.pbt`): the
generations queued in real Optuna storage, who continues whose checkpoint, a member's segment
run once, and, end to end at tiny size, the explored values trained with, a kill mid-generation,
lineage.csv and the replay of the best member's schedule from scratch."""

from __future__ import annotations

import csv
import html
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from gan.study import pbt
from gan.study.errors import StudyRefused
from gan.study.population import LINEAGE_CSV, Population, pbt_conf
from gan.study.sampler import first_values, make_sampler
from gan.study.trials import COLLAPSED_AT, SWD
from tests.conftest import ROOT, assert_commands_reproduce, run_cli, start_cli, wait_for_steps
from tests.test_sweep import load, summary, sweep_args

SPACE = {
    "optim.gen_lr": FloatDistribution(1e-5, 1e-2, log=True),
    "optim.beta1": FloatDistribution(0.0, 0.9),
}


def population(study: optuna.Study, size: int = 4, steps: int = 60) -> Population:
    conf = pbt.PBTConf(population=size, interval=20, quantile=0.25)
    return Population(study, conf, SPACE, first, steps=steps, seed=0, images=(256, 64))


def first(member: int) -> dict[str, float]:
    return {"optim.gen_lr": 1e-4 * (member + 1), "optim.beta1": 0.1 * member}


def add_generation(study: optuna.Study, g: int, swds: list[float | None], collapsed=()) -> None:
    """Generation g as finished trials, member m with SWD swds[m] (None: failed)."""
    for m, swd in enumerate(swds):
        attrs = {pbt.MEMBER: m, pbt.GENERATION: g, "run_dir": f"runs/{g}-{m}"}
        if swd is not None:
            attrs[SWD] = swd
        if m in collapsed:
            attrs[COLLAPSED_AT] = 20
        params = {"optim.gen_lr": 1e-3 * (m + 1), "optim.beta1": 0.5}
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE if swd is not None else TrialState.FAIL,
                value=1.0 if swd is not None else None,
                params=params,
                distributions=SPACE,
                user_attrs=attrs,
            )
        )


def waiting(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def test_generation_zero_is_queued_once_with_a_member_each() -> None:
    study = optuna.create_study(direction="maximize")
    pop = population(study)
    assert pop.queue(0) and pop.queue(0)  # the second finds it queued
    queued = waiting(study)
    assert [t.user_attrs for t in queued] == [{pbt.MEMBER: m, pbt.GENERATION: 0} for m in range(4)]
    assert pop.generations == 3 and pop.n_trials == 12
    for m, t in enumerate(queued):  # each member's first values, whatever its trial's number
        trial = study.ask(SPACE)
        assert trial.number == t.number and trial.params == pytest.approx(first(m))
        study.tell(trial, 1.0)


def test_a_member_starts_with_the_draw_of_its_number_as_a_trial() -> None:
    """first_values(sampler, space, m) is what the study's sampler, seeded per trial, draws for
    trial m: one sweep process's population starts as the first trials of a TPE or random study
    would, and two processes that interleave the trials' numbers start it alike."""
    sampler, _ = make_sampler({"_target_": "optuna.samplers.RandomSampler", "seed": 7}, SPACE)
    study = optuna.create_study(sampler=sampler)
    drawn = [study.ask(SPACE).params for _ in range(3)]
    assert [first_values(sampler, SPACE, m) for m in range(3)] == drawn
    assert drawn[0] != drawn[1]


def test_the_bottom_continues_a_top_checkpoint_and_a_collapse_is_replaced() -> None:
    study = optuna.create_study(direction="maximize")
    pop = population(study, size=8)
    add_generation(study, 0, [30.0, 10.0, 50.0, 20.0, 40.0, 35.0, 45.0, 60.0], collapsed={0})
    assert pop.queue(1)
    nxt = {t.user_attrs[pbt.MEMBER]: t for t in waiting(study)}
    assert sorted(nxt) == list(range(8))
    # of 8, the top quarter is members 1 and 3 (SWD 10 and 20); the bottom quarter is the
    # collapsed 0 (a collapse ranks last, whatever its SWD) and member 7 (SWD 60)
    for m in (0, 7):
        a = nxt[m].user_attrs
        p = a[pbt.PARENT]
        assert p in (1, 3)
        assert (a[pbt.PARENT_TRIAL], a[pbt.RESUMED], a[pbt.EXPLOITED]) == (p, f"runs/0-{p}", True)
        ratio = nxt[m].system_attrs["fixed_params"]["optim.gen_lr"] / (1e-3 * (p + 1))
        assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.2)
    for m in (1, 2, 3, 4, 5, 6):
        a = nxt[m].user_attrs
        assert (a[pbt.PARENT], a[pbt.RESUMED], a[pbt.EXPLOITED]) == (m, f"runs/0-{m}", False)
        assert nxt[m].system_attrs["fixed_params"]["optim.gen_lr"] == 1e-3 * (m + 1)


def test_a_failed_member_ranks_as_a_collapse_and_all_collapsed_ends_the_population() -> None:
    study = optuna.create_study(direction="maximize")
    pop = population(study, size=2)
    add_generation(study, 0, [None, 25.0])
    assert pop.queue(1)
    parents = {t.user_attrs[pbt.MEMBER]: t.user_attrs[pbt.PARENT] for t in waiting(study)}
    assert parents == {0: 1, 1: 1}

    other = optuna.create_study(direction="maximize")
    ended = population(other, size=2)
    add_generation(other, 0, [20.0, None], collapsed={0})
    assert not ended.queue(1) and not waiting(other)


def test_a_members_segment_queued_twice_runs_once() -> None:
    """Two sweep processes that queue one generation at once: the later trial of a member's
    segment is not run."""
    study = optuna.create_study(direction="maximize")
    pop = population(study)
    for _ in range(2):
        study.enqueue_trial({}, user_attrs={pbt.MEMBER: 0, pbt.GENERATION: 0}, skip_if_exists=False)
    first, second = study.ask(SPACE), study.ask(SPACE)
    assert pop.segment(first) == {"train.steps": 20, "eval.num_images": 64}
    assert pop.segment(second) == f"member 0's segment of generation 0 is trial {first.number}"
    assert isinstance(pop.segment(study.ask(SPACE)), str)  # no member: not the population's


def test_a_copy_still_queued_when_its_generation_is_complete_is_dropped() -> None:
    """The other process's copies of a generation that another ran (they wait below the next
    generation's trials, or forever after the last) are failed as not run."""
    study = optuna.create_study(direction="maximize")
    pop = population(study, size=2)
    pop.queue(0)
    for _ in range(2):  # member 0's segment queued again by other processes at the same moment
        study.enqueue_trial(
            first(0), user_attrs={pbt.MEMBER: 0, pbt.GENERATION: 0}, skip_if_exists=False
        )
    ran = [study.ask(SPACE) for _ in range(2)]  # trials 0 and 1: members 0 and 1
    for trial in ran:
        trial.set_user_attr(SWD, 10.0)
        study.tell(trial, 1.0)
    assert pop.members(0) == {0: study.trials[0], 1: study.trials[1]}
    pop._drop_copies(0)
    left = study.trials[2:]
    assert [t.state for t in left] == [TrialState.FAIL] * 2
    assert [t.user_attrs["not_run"] for t in left] == [
        "member 0's segment of generation 0 is trial 0"
    ] * 2


def test_the_last_generation_measures_the_swd_on_all_images_and_resumes() -> None:
    study = optuna.create_study(direction="maximize")
    pop = population(study, size=2, steps=50)  # generations of 20, 20 and 10 steps
    attrs = {pbt.MEMBER: 1, pbt.GENERATION: 2, pbt.RESUMED: "runs/1-0"}
    study.enqueue_trial({"optim.gen_lr": 1e-3, "optim.beta1": 0.5}, user_attrs=attrs)
    trial = study.ask(SPACE)
    assert pop.segment(trial) == {"train.steps": 50, "resume": "runs/1-0", "eval.num_images": 256}


def test_a_population_is_continued_only_with_its_own_settings() -> None:
    study = optuna.create_study(direction="maximize")
    population(study)
    with pytest.raises(StudyRefused, match="population=4, but this sweep says population=5"):
        population(study, size=5)


@pytest.mark.parametrize(
    ("conf", "pruner", "match"),
    [
        ({"population": 1}, None, r"pbt.population=1 makes no population"),
        ({"quantile": 0.75, "factors": []}, None, r"quantile=0.75, hydra.sweeper.pbt.factors=\[\]"),
        ({}, {"_target_": "optuna.pruners.MedianPruner"}, "cannot be combined with hydra.sweeper"),
    ],
)
def test_pbt_settings_that_make_no_population_are_refused(conf, pruner, match) -> None:
    with pytest.raises(StudyRefused, match=match):
        pbt_conf(conf, pruner, None, ["maximize"])


def test_a_population_with_the_grid_sampler_is_refused() -> None:
    grid = {"_target_": "optuna.samplers.GridSampler", "_partial_": True, "seed": 0}
    with pytest.raises(StudyRefused, match="the grid sampler has no such draw"):
        pbt_conf({}, None, None, ["maximize"], grid)
    random_sampler = {"_target_": "optuna.samplers.RandomSampler", "seed": 0}
    assert pbt_conf({}, None, None, ["maximize"], random_sampler) is not None


# end to end: 3 members, segments of 20 steps to 60 (debug=default: the tiny model, fp32)
PBT = ["sweep=pbt", "debug=default", "hydra.sweeper.pbt.population=3"]
PBT += ["hydra.sweeper.pbt.interval=20", "train.checkpoint_every=20", "eval.num_images_during=32"]


def lineage(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / LINEAGE_CSV, newline="") as f:
        return list(csv.DictReader(f))


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_killed_population_continues_explores_and_replays_its_best_schedule(tmp_path, cache_dir):
    """One population, killed during generation 1 and continued by the same command: each
    member's segment ran once, each with the values it was given and its parent's checkpoint,
    and the best member's replay from scratch is bit for bit its G."""
    sweep = tmp_path / "pbt"
    args = sweep_args(sweep, cache_dir, *PBT)
    proc = start_cli(*args)
    wait_for_steps(sweep / "4", 5, timeout=240)  # generation 1 is under way
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "pbt")
    killed = study.trials[4]
    assert killed.state == TrialState.FAIL and killed.user_attrs["stale"]
    assert summary(sweep / "4")["status"] == "interrupted"
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == 4)
    keys = (pbt.MEMBER, pbt.GENERATION, pbt.PARENT, pbt.PARENT_TRIAL, pbt.RESUMED)
    assert [retry.user_attrs.get(k) for k in keys] == [killed.user_attrs.get(k) for k in keys]
    assert retry.params == killed.params

    rows = lineage(sweep)
    assert [(r["generation"], r["member"]) for r in rows] == [
        (str(g), str(m)) for g in range(3) for m in range(3)
    ]
    assert all(r["state"] == "COMPLETE" for r in rows)
    by_trial = {int(r["trial"]): r for r in rows}
    ran = [study.trials[n] for n in by_trial]
    for t in ran:
        run = Path(t.user_attrs["run_dir"])
        g = t.user_attrs[pbt.GENERATION]
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert state["step"] == 20 * (g + 1)
        # the values the segment was given are the ones its Adams trained with
        gen, disc = (state[k]["param_groups"][0] for k in ("opt_g", "opt_d"))
        assert gen["lr"] == t.params["optim.gen_lr"] and disc["lr"] == t.params["optim.disc_lr"]
        assert gen["betas"][0] == disc["betas"][0] == t.params["optim.beta1"]
        if g == 0:
            assert pbt.RESUMED not in t.user_attrs
            continue
        # a later segment continues its parent's checkpoint of the generation before
        parent = study.trials[t.user_attrs[pbt.PARENT_TRIAL]]
        assert parent.user_attrs[pbt.GENERATION] == g - 1
        assert parent.user_attrs[pbt.MEMBER] == t.user_attrs[pbt.PARENT]
        assert t.user_attrs[pbt.RESUMED] == parent.user_attrs["run_dir"]
        resumed = yaml.safe_load((run / ".hydra" / "resumed_config.yaml").read_text())
        assert resumed["resume"] == parent.user_attrs["run_dir"]
        # its metrics.csv goes on from its parent's rows (carried over with the checkpoint)
        mine, parents = (metrics(p) for p in (run, Path(parent.user_attrs["run_dir"])))
        assert [r for r in mine if int(r["step"]) <= 20 * g] == parents
        assert int(mine[-1]["step"]) == 20 * (g + 1)
        took = t.user_attrs[pbt.PARENT] != t.user_attrs[pbt.MEMBER]
        assert by_trial[t.number]["exploited"] == str(took)
        # a collapsed member (or the worst) never goes on with its own weights
        before = [study.trials[int(r["trial"])] for r in rows if int(r["generation"]) == g - 1]
        own = next(b for b in before if b.user_attrs[pbt.MEMBER] == t.user_attrs[pbt.MEMBER])
        if own.user_attrs.get(COLLAPSED_AT) is not None:
            assert t.user_attrs[pbt.EXPLOITED]
    assert any(t.user_attrs.get(pbt.EXPLOITED) for t in ran)
    # the intermediate SWDs on the cheap count, the last generation's on all of eval.num_images
    counts = [summary(Path(t.user_attrs["run_dir"]))["quality"]["swd_images"] for t in ran]
    assert counts == [32] * 6 + [64] * 3  # eval.num_images_during, then all 64 images

    # the answer: the best member of the last generation and the run that replays its schedule
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    answer = results["pbt"]
    best = study.trials[answer["trial"]]
    assert best.user_attrs[pbt.GENERATION] == 2 and results["best_trial"] == answer["trial"]
    assert len(answer["ancestry"]) == 3
    # the replay with the study's seed (0), as benchmarks/pbt_replay.py runs it
    out, plot = tmp_path / "replays", tmp_path / "schedules.png"
    printed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pbt_replay.py"), str(sweep), "--seeds", "0",
         "--out", str(out), "--plot", str(plot)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr[-3000:]
    (line,) = [x for x in printed.stdout.splitlines() if x.startswith("seed 0: ")]
    assert line.endswith(f", SWD {answer['swd']}")
    assert plot.read_bytes().startswith(b"\x89PNG")
    replay = out / "seed_0"
    mine, theirs = (
        torch.load(p / "checkpoints" / "generator.pt", weights_only=True)["state_dict"]
        for p in (replay, Path(answer["run_dir"]))
    )
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)  # bit for bit
    assert summary(replay)["quality"]["swd"] == answer["swd"]
    assert_commands_reproduce(sweep)
    # the report: the schedules drawn, the best member and its replay command
    page = tmp_path / "report.html"
    compare = subprocess.run(
        [sys.executable, "-m", "gan.compare", str(sweep), "--html", str(page)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert compare.returncode == 0, compare.stderr[-3000:]
    text = html.unescape(page.read_text())
    assert "Population: each member's values by step" in text
    said = f"best member of population pbt: member {answer['member']}, trial {answer['trial']}"
    assert said in text and said in compare.stdout  # not a segment of an earlier generation
    assert answer["replay_command"] in text


@pytest.mark.slow
def test_a_population_cannot_search_what_a_resume_keeps(tmp_path, cache_dir):
    result = run_cli(
        *sweep_args(tmp_path / "pbt", cache_dir, *PBT, "model.gen_features=choice(8,16)")
    )
    assert result.returncode == 2
    assert "hydra.sweeper.pbt cannot search model.gen_features" in result.stderr

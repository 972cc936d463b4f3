"""Population-based training's decisions (gan/study/pbt.py): the ranking, who exploits whom,
what exploring does to each kind of key, and which keys a population cannot search."""

import math
import random

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from gan.config import RESUME_KEEPS
from gan.nets.schedule import Schedule
from gan.study.pbt import (
    Member,
    PBTConf,
    Segment,
    ancestry,
    next_segments,
    perturb,
    rank,
    replay,
    replay_overrides,
    unsearchable,
)

SPACE = {
    "optim.gen_lr": FloatDistribution(1e-5, 1e-2, log=True),
    "optim.beta1": FloatDistribution(0.0, 0.9),
    "optim.n_critic": IntDistribution(1, 5),
    "optim.loss": CategoricalDistribution(["bce", "hinge"]),
}


def member(n: int, swd: float | None, collapsed: bool = False) -> Member:
    params = {"optim.gen_lr": 1e-3 * (n + 1), "optim.beta1": 0.5, "optim.n_critic": 2}
    return Member(n, {**params, "optim.loss": "bce"}, f"runs/{n}", collapsed, swd)


def test_rank_puts_collapses_last_then_orders_by_swd() -> None:
    members = [member(0, 30.0), member(1, 10.0, collapsed=True), member(2, None), member(3, 20.0)]
    members.append(member(4, math.nan))
    assert [m.number for m in rank(members)] == [3, 0, 2, 4, 1]


def test_the_bottom_quarter_continues_a_top_members_checkpoint() -> None:
    members = [member(n, swd) for n, swd in enumerate([50.0, 10.0, 40.0, 20.0, 30.0, 60.0, 15, 70])]
    segments = next_segments(members, SPACE, PBTConf(), random.Random(0))
    assert [s.member for s in segments] == list(range(8))
    exploited = {s.member: s for s in segments if s.exploited}
    assert set(exploited) == {5, 7}  # the two highest SWDs of eight
    for s in exploited.values():
        assert s.parent in (1, 6) and s.resume == f"runs/{s.parent}"  # the top two
        donor = members[s.parent].params
        assert s.params["optim.gen_lr"] / donor["optim.gen_lr"] in (0.8, 1.2)
    for s in segments:
        if not s.exploited:
            assert (s.parent, s.resume, s.params) == (
                s.member,
                f"runs/{s.member}",
                members[s.member].params,
            )


def test_a_collapsed_member_is_replaced_even_outside_the_bottom_quantile() -> None:
    members = [member(0, 10.0), member(1, 20.0, collapsed=True), member(2, 30.0, collapsed=True)]
    members += [member(3, 40.0)]
    segments = next_segments(members, SPACE, PBTConf(quantile=0.25), random.Random(1))
    assert {s.member for s in segments if s.exploited} == {1, 2}
    assert all(s.parent == 0 for s in segments if s.exploited)


def test_perturb_stays_in_bounds_rounds_integers_and_resamples_choices() -> None:
    rng = random.Random(0)
    edge = {"optim.gen_lr": 1e-2, "optim.beta1": 0.9, "optim.n_critic": 5, "optim.loss": "bce"}
    seen_loss = set()
    for _ in range(200):
        p = perturb(edge, SPACE, PBTConf(resample_probability=0.5), rng)
        assert 1e-5 <= p["optim.gen_lr"] <= 1e-2 and 0 <= p["optim.beta1"] <= 0.9
        assert p["optim.n_critic"] in (4, 5)  # 5 x 0.8 = 4; 5 x 1.2 capped at 5
        seen_loss.add(p["optim.loss"])
    assert seen_loss == {"bce", "hinge"}
    never = perturb(edge, SPACE, PBTConf(resample_probability=0.0), rng)
    assert never["optim.loss"] == "bce"


def test_keys_a_resume_cannot_change_cannot_be_searched() -> None:
    space = {
        **SPACE,
        "model.gen_features": CategoricalDistribution([16, 32]),
        "train.batch_size": CategoricalDistribution([32, 64]),
        "augment": CategoricalDistribution(["none", "seed"]),
        "augment.hflip": FloatDistribution(0.0, 0.5),
    }
    assert unsearchable(space, RESUME_KEEPS) == [
        "optim.loss", "model.gen_features", "train.batch_size", "augment"
    ]  # fmt: skip


def segment(member: int, parent: int, gen_lr: float, beta1: float = 0.5) -> Segment:
    params = {"optim.gen_lr": gen_lr, "optim.beta1": beta1}
    return Segment(member, params, f"g/{parent}", parent, exploited=member != parent)


# three generations of two members: member 1 copies member 0 at the second interval
GENERATIONS = [
    [segment(0, 0, 1e-3), segment(1, 1, 5e-4)],
    [segment(0, 0, 1e-3), segment(1, 0, 1.2e-3, beta1=0.4)],
    [segment(0, 0, 1e-3), segment(1, 1, 1.2e-3, beta1=0.4)],
]


def test_ancestry_follows_the_weights_back_through_an_exploit() -> None:
    chain = ancestry(GENERATIONS, member=1)
    assert [(s.member, s.params["optim.gen_lr"]) for s in chain] == [
        (0, 1e-3),
        (1, 1.2e-3),
        (1, 1.2e-3),
    ]
    assert [s.params["optim.gen_lr"] for s in ancestry(GENERATIONS, 0)] == [1e-3] * 3


def test_replay_is_one_run_whose_schedule_changes_at_each_segment(tiny_cfg) -> None:
    start, entries = replay(ancestry(GENERATIONS, member=1), interval=250)
    assert start == {"optim.gen_lr": 1e-3, "optim.beta1": 0.5}
    assert entries == [{"step": 250, "gen_lr": 1.2e-3, "beta1": 0.4}]
    cfg = tiny_cfg(*replay_overrides(start, entries))  # composes, and says what trains
    schedule = Schedule(cfg.optim)
    assert schedule.values_at(249)["gen_lr"] == 1e-3
    assert schedule.values_at(250) == {**schedule.base, "gen_lr": 1.2e-3, "beta1": 0.4}


def test_a_chain_that_changes_a_key_no_schedule_takes_cannot_be_replayed() -> None:
    chain = [
        segment(0, 0, 1e-3),
        Segment(0, {"optim.gen_lr": 1e-3, "augment.hflip": 0.5}, "g/0", 0),
    ]
    with pytest.raises(ValueError, match="generation 1 changes augment.hflip"):
        replay(chain, interval=100)

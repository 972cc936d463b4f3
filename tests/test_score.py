import math

import pytest

from gan.run.score import ScoreTracker, rank_key, score_trace

EPS, PATIENCE = 0.05, 5


def run(d_real, d_fake, losses=None):
    return score_trace(d_real, d_fake, losses, eps=EPS, patience=PATIENCE)


def test_healthy_run_scores_one():
    tracker = run([0.6] * 100, [0.4] * 100)
    assert tracker.collapsed_at is None
    assert tracker.score(100) == 1.0


def test_d_real_to_one_collapses_at_end_of_window():
    d_real = [0.6] * 30 + [0.99] * 70
    tracker = run(d_real, [0.3] * 100)
    # steps 31..35 are the first window of 5 unhealthy steps
    assert tracker.collapsed_at == 35
    assert tracker.reason == "D(x) > 1-eps for 5 steps"
    assert tracker.score(100) == pytest.approx(0.35)


def test_d_fake_to_zero():
    tracker = run([0.7] * 100, [0.3] * 10 + [0.001] * 90)
    assert tracker.collapsed_at == 15
    assert tracker.reason.startswith("D(G(z)) < eps")


def test_both_sides_named():
    tracker = run([0.999] * 10, [0.0001] * 10)
    assert tracker.collapsed_at == 5
    assert tracker.reason == "D(x) > 1-eps and D(G(z)) < eps for 5 steps"


def test_nan_loss_collapses_at_once():
    losses = [(0.7, 1.2)] * 9 + [(math.nan, 1.2)] + [(0.7, 1.2)] * 10
    tracker = run([0.5] * 20, [0.5] * 20, losses)
    assert tracker.collapsed_at == 10
    assert tracker.reason == "non-finite loss"
    assert tracker.score(20) == 0.5


def test_inf_d_mean_collapses_at_once():
    tracker = run([0.5, math.inf, 0.5], [0.5] * 3)
    assert tracker.collapsed_at == 2


def test_flicker_shorter_than_patience_is_forgiven():
    # four unhealthy steps, a healthy one, four more: never five in a row
    d_real = ([0.99] * 4 + [0.6]) * 20
    tracker = run(d_real, [0.3] * 100)
    assert tracker.collapsed_at is None
    assert tracker.score(100) == 1.0


def test_boundaries_are_healthy():
    tracker = run([1 - EPS] * 20, [EPS] * 20)
    assert tracker.collapsed_at is None


def test_state_round_trip_continues_the_window():
    first = ScoreTracker(eps=EPS, patience=PATIENCE)
    for t in range(1, 4):
        first.update(t, 0.99, 0.3)
    resumed = ScoreTracker.from_state_dict(first.state_dict())
    assert not resumed.update(4, 0.99, 0.3)
    assert resumed.update(5, 0.99, 0.3)
    assert resumed.collapsed_at == 5


def diversity_tracker(*samples: tuple[int, float], collapsed_at: int | None = None) -> ScoreTracker:
    tracker = ScoreTracker(eps=EPS, patience=PATIENCE, min_diversity=0.2)
    tracker.collapsed_at = collapsed_at
    for step, diversity in samples:
        tracker.sample(step, diversity)
    tracker.end_of_training()
    return tracker


def test_diversity_rule_is_off_by_default():
    tracker = ScoreTracker(eps=EPS, patience=PATIENCE)
    tracker.sample(0, 0.01)
    assert not tracker.end_of_training() and tracker.score(100) == 1.0


def test_grids_that_never_vary_collapse_at_step_zero():
    tracker = diversity_tracker((0, 0.14), (200, 0.12), (400, 0.10), (600, 0.10))
    assert tracker.collapsed_at == 0 and tracker.score(600) == 0.0
    assert tracker.reason == (
        "sample diversity < 0.2 in every grid, from the untrained G's at step 0 to the end: G "
        "never made varied images (last 0.100)"
    )


def test_mode_collapse_counts_from_where_the_grids_stopped_varying():
    tracker = diversity_tracker((0, 0.14), (200, 0.6), (400, 0.15), (600, 0.12))
    assert tracker.collapsed_at == 400 and tracker.score(600) == pytest.approx(2 / 3)


def test_a_low_grid_that_recovers_is_forgiven():
    tracker = diversity_tracker((0, 0.14), (200, 0.1), (400, 0.5), (600, 0.8))
    assert tracker.collapsed_at is None and tracker.score(600) == 1.0


def test_a_d_collapse_keeps_its_step_and_reason():
    """A run the D means collapsed stopped early, with grids as plain as an untrained G's."""
    tracker = diversity_tracker((0, 0.14), (100, 0.1), collapsed_at=150)
    assert tracker.collapsed_at == 150 and tracker.reason is None


# (score, SWD) of runs, best first
RANKED = {
    "b_close_to_the_data": (1.0, 6.5),
    "a_blurred": (1.0, 40.0),
    "c_no_swd": (1.0, None),
    "d_collapsed": (0.2, 5.0),
    "e_unscored": (None, None),
}


def test_rank_key_breaks_ties_in_score_by_the_lower_swd():
    assert sorted(reversed(RANKED), key=lambda name: rank_key(*RANKED[name])) == list(RANKED)
    assert rank_key(float("nan"), 5.0) > rank_key(0.0, None)  # a non-finite score is no score
    assert rank_key(1.0, float("inf")) == rank_key(1.0, None)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_sweeper_picks_its_best_trial_by_rank_key(direction):
    import optuna

    from gan.study.ranking import best_trial
    from gan.study.trials import SWD

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    sign = 1 if direction == "maximize" else -1
    for score, swd in (RANKED[n] for n in ("a_blurred", "d_collapsed", "b_close_to_the_data")):
        attrs = {} if swd is None else {SWD: swd}
        trial = optuna.trial.create_trial(value=sign * score, user_attrs=attrs)
        study.add_trial(trial)
    assert best_trial(study).number == 2  # b_close_to_the_data


def test_the_confirmed_best_is_the_best_mean_among_settings_that_never_collapsed():
    """Setting #1 of the study has the lower mean SWD over its seeds, but one of them collapsed;
    #2 never collapsed and is the confirmed best. #3 missed a seed, so it is not eligible."""
    import statistics

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from gan.study import confirm

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"optim.gen_lr": FloatDistribution(1e-4, 1e-2, log=True)}
    source = optuna.create_study(direction="maximize")
    for lr, score, swd in (
        (1e-3, 1.0, 20.0),
        (2e-3, 1.0, 30.0),
        (3e-3, 1.0, 35.0),
        (4e-3, 0.2, 9.0),
    ):
        source.add_trial(
            optuna.trial.create_trial(
                params={"optim.gen_lr": lr},
                distributions=space,
                value=score,
                user_attrs={"swd": swd},
            )
        )
    top = confirm.top_trials(source, 3)
    assert [t.number for t in top] == [0, 1, 2]  # score first, then the SWD
    seeds = confirm.seed_values(0, 2)
    assert seeds == [1, 2]
    reruns = {  # source trial -> (score, SWD, collapsed) per seed
        0: [(1.0, 18.0, False), (0.6, 22.0, True)],
        1: [(1.0, 28.0, False), (1.0, 36.0, False)],
        2: [(1.0, 25.0, False)],  # its second seed never finished
    }
    study = optuna.create_study(direction="maximize")
    space_c = confirm.confirm_space(top, seeds)
    summaries = {}
    for number, runs in reruns.items():
        for seed, (score, swd, collapsed) in zip(seeds, runs, strict=False):
            run_dir = f"/runs/{number}-{seed}"
            summaries[run_dir] = {"quality": {"swd": swd}, "collapsed_at": 5 if collapsed else None}
            study.add_trial(
                optuna.trial.create_trial(
                    params={**top[number].params, "seed": seed},
                    distributions=space_c,
                    value=score,
                    user_attrs={confirm.CONFIRMS: number, "run_dir": run_dir},
                )
            )
    assert isinstance(space_c["seed"], CategoricalDistribution)
    found = confirm.settings(study, source, 2, lambda path: summaries[str(path)])
    assert [(s.rank, s.source.number) for s in found] == [(1, 0), (2, 1), (3, 2)]
    rows = [s.row(False) for s in found]
    assert [r["collapsed_fraction"] for r in rows[:2]] == [0.5, 0.0]
    assert rows[1]["swd_mean"] == 32.0 and rows[1]["swd_sd"] == pytest.approx(
        statistics.stdev([28, 36])
    )
    assert rows[2]["seeds_done"] == 1 and not found[2].eligible()
    best = confirm.confirmed_best(found)
    assert best is found[1]

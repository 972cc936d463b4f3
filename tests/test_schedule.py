"""optim.schedule: Adam's settings changed at a step train exactly as a run resumed there with
the new values, through a resume of their own too, and bad schedules are refused by name."""

import pytest

from gan.config import validate
from gan.errors import UserError
from gan.nets.schedule import Schedule
from gan.run.train import train
from tests.test_train import assert_same_training, last

CHANGE = "optim.schedule=[{step: 10, gen_lr: 0.001, beta1: 0.3}]"


def test_a_schedule_trains_as_a_run_resumed_with_the_new_values(tiny_cfg, tmp_path) -> None:
    train(tiny_cfg("train.steps=20", CHANGE), tmp_path / "scheduled")
    train(tiny_cfg("train.steps=10"), tmp_path / "first")
    resumed = ["train.steps=20", f"resume={tmp_path / 'first'}", "optim.gen_lr=0.001"]
    train(tiny_cfg(*resumed, "optim.beta1=0.3"), tmp_path / "second")
    assert_same_training(tmp_path / "scheduled", tmp_path / "second")
    group = last(tmp_path / "scheduled")["opt_g"]["param_groups"][0]
    assert group["lr"] == 0.001 and group["betas"][0] == 0.3
    assert last(tmp_path / "scheduled")["opt_d"]["param_groups"][0]["lr"] == 2e-4


def test_a_resumed_scheduled_run_goes_on_with_its_schedule(tiny_cfg, tmp_path) -> None:
    later = "optim.schedule=[{step: 15, disc_lr: 0.001}]"
    train(tiny_cfg("train.steps=20", later), tmp_path / "whole")
    train(tiny_cfg("train.steps=10", later), tmp_path / "first")
    train(tiny_cfg("train.steps=20", later, f"resume={tmp_path / 'first'}"), tmp_path / "second")
    assert_same_training(tmp_path / "whole", tmp_path / "second")
    # resumed after the change: the scheduled value, not the config's base one
    train(tiny_cfg("train.steps=20", CHANGE), tmp_path / "long")
    train(tiny_cfg("train.steps=30", CHANGE, f"resume={tmp_path / 'long'}"), tmp_path / "on")
    assert last(tmp_path / "on")["opt_g"]["param_groups"][0]["lr"] == 0.001


def test_values_hold_from_each_entrys_step() -> None:
    from gan.config import OptimConfig

    schedule = Schedule(OptimConfig(schedule=[{"step": 5, "gen_lr": 1.0}, {"step": 9, "beta1": 0}]))
    assert schedule.values_at(4)["gen_lr"] == 2e-4
    assert schedule.values_at(5)["gen_lr"] == schedule.values_at(9)["gen_lr"] == 1.0
    assert (schedule.values_at(8)["beta1"], schedule.values_at(9)["beta1"]) == (0.5, 0.0)


@pytest.mark.parametrize(
    ("schedule", "said"),
    [
        ("[{gen_lr: 0.1}]", "entry 0 needs a `step`"),
        ("[{step: 5, loss: 1}]", "entry 0 sets loss: a schedule changes only gen_lr"),
        ("[{step: 5, gen_lr: -1}]", "entry 0 gen_lr=-1.0: use a number > 0"),
        ("[{step: 5, beta1: 1}]", "entry 0 beta1=1.0: use a number in [0, 1)"),
        ("[{step: 9, gen_lr: 1}, {step: 5, gen_lr: 2}]", "steps must increase"),
    ],
)
def test_a_bad_schedule_is_refused_by_name(tiny_cfg, schedule: str, said: str) -> None:
    with pytest.raises(UserError, match="Invalid config") as refused:
        validate(tiny_cfg(f"optim.schedule={schedule}"))
    assert said in str(refused.value)

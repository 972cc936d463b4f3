"""Faults a run must survive with nothing lost (docs/reliability.md): a reused or contested run
folder, signals at any moment (also a second one during the wrap-up), SIGKILL, a full disk,
damaged checkpoints and caches, and the messages each of them gets. Real runs in subprocesses,
as a user (or a scheduler) meets them."""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.data import load_images
from gan.files import atomic_write
from gan.run.folder import METRICS

from .conftest import ROOT, TINY, make_cfg, run_cli, start_cli, wait_for_steps

pytestmark = pytest.mark.slow


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def metrics_without_time(run: Path) -> list[str]:
    drop = METRICS.index("time_s")
    lines = (run / "metrics.csv").read_text().splitlines()
    return [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in lines]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A 10-step run that finished: the folder the tests below try to reuse, damage, resume."""
    run = tmp_path_factory.mktemp("finished") / "run"
    done = run_cli(*TINY, "train.steps=10", f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr[-2000:]
    return run


def test_a_refused_run_writes_nothing_into_the_folder(finished_run, tmp_path, cache_dir):
    """Hydra writes .hydra/ and run.log before the run starts: the folder is claimed before."""
    before = snapshot(finished_run)
    again = run_cli(*TINY, "optim.gen_lr=0.005", f"hydra.run.dir={finished_run}")
    assert again.returncode == 2
    assert f"{finished_run} already holds a run" in again.stderr
    onto_itself = run_cli(f"resume={finished_run}", f"hydra.run.dir={finished_run}")
    assert onto_itself.returncode == 2
    assert snapshot(finished_run) == before  # .hydra/config.yaml still says the old gen_lr
    resumed = run_cli(f"resume={finished_run}", "train.steps=15", f"hydra.run.dir={tmp_path}/r")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert summary(tmp_path / "r")["steps_done"] == 15


def test_two_runs_started_together_on_one_folder(tmp_path, cache_dir):
    run = tmp_path / "run"
    args = [*TINY, "train.steps=20", f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}"]
    procs = [start_cli(*args) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes == [0, 2]  # one ran, the other was refused
    steps = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().split()[1:]]
    assert steps == list(range(1, 21))  # every step once
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert summary(run)["status"] in ("completed", "collapsed")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_at_a_step_boundary_and_resuming_equals_one_run(tmp_path, cache_dir, signum):
    """Ctrl-C (or a scheduler's SIGTERM) at any moment: the checkpoint holds whole steps, so the
    resumed run is the uninterrupted run, step for step and weight for weight."""
    common = [
        *TINY,
        "train.checkpoint_every=0",
        "score.stop_on_collapse=false",  # the tiny run collapses early: it must not end itself
        f"data.cache_dir={cache_dir}",
    ]
    run = tmp_path / "run"
    proc = start_cli(*common, "train.steps=100000", f"hydra.run.dir={run}")
    wait_for_steps(run, 20)
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == 130
    assert summary(run)["status"] == "interrupted"
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    step = state["step"]
    assert step == summary(run)["steps_done"] >= 20
    assert len(metrics_without_time(run)) == 1 + step  # every step up to the checkpoint's

    resumed, uninterrupted = tmp_path / "resumed", tmp_path / "uninterrupted"
    done = run_cli(f"resume={run}", f"train.steps={step + 15}", f"hydra.run.dir={resumed}")
    assert done.returncode == 0, done.stderr[-2000:]
    done = run_cli(*common, f"train.steps={step + 15}", f"hydra.run.dir={uninterrupted}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert metrics_without_time(resumed) == metrics_without_time(uninterrupted)
    a = torch.load(resumed / "checkpoints/last.pt", weights_only=True)
    b = torch.load(uninterrupted / "checkpoints/last.pt", weights_only=True)
    for net in ("gen", "disc"):
        for name, tensor in a[net].items():
            assert torch.equal(tensor, b[net][name]), f"{net}.{name}"
    assert summary(run)["status"] == "interrupted"  # the interrupted folder is left as it was


# a run in this process whose own code sends it a second signal at the worst moment: inside
# the checkpoint write of an interrupted run, or inside the final SWD of a finished one
SECOND_SIGNAL = """
import os, signal, sys
from pathlib import Path
from gan.run import interrupts
from gan.run.folder import RunFolder
from gan.run.finish import Evaluation
from gan.run.train import train
from tests.conftest import make_cfg

where, cache_dir, run_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
if where == "checkpoint":
    save = RunFolder.save_checkpoint
    def save_checkpoint(self, state):
        if interrupts.pending():  # the first signal stopped the loop: a second one, now
            os.kill(os.getpid(), signal.SIGINT)
        save(self, state)
    RunFolder.save_checkpoint = save_checkpoint
    overrides = ["train.steps=100000", "score.stop_on_collapse=false", "train.checkpoint_every=0"]
else:
    evaluate = Evaluation.__call__
    def call(self, gen):
        os.kill(os.getpid(), signal.SIGINT)
        return evaluate(self, gen)
    Evaluation.__call__ = call
    overrides = ["train.steps=20"]
try:
    train(make_cfg(*overrides, cache_dir=cache_dir), run_dir)
    print("returned")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize("where", ["checkpoint", "final-swd"])
def test_a_second_signal_cannot_cut_the_wrap_up_in_half(tmp_path, cache_dir, where):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", SECOND_SIGNAL, where, str(cache_dir), str(run)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if where == "checkpoint":
        wait_for_steps(run, 10)
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert out.split() == ["interrupted"], err[-2000:]
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert state["step"] == summary(run)["steps_done"]
    if where == "checkpoint":
        assert summary(run)["status"] == "interrupted"
    else:  # training had ended: the run is complete, with its SWD
        assert summary(run)["status"] in ("completed", "collapsed")
        assert summary(run)["quality"]["swd"] > 0


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(tmp_path, cache_dir):
    run = tmp_path / "run"
    args = [*TINY, "train.steps=100000", "score.stop_on_collapse=false"]
    proc = start_cli(*args, f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}")
    wait_for_steps(run, 25)
    proc.kill()
    proc.wait(timeout=60)
    assert summary(run)["status"] == "running"  # nothing could say otherwise (gan.compare: stale?)
    step = torch.load(run / "checkpoints/last.pt", weights_only=True)["step"]
    assert step >= 20 and step % 10 == 0
    done = run_cli(f"resume={run}", f"train.steps={step + 5}", f"hydra.run.dir={tmp_path}/r")
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary(tmp_path / "r")["steps_done"] == step + 5


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1.5 MB tmpfs (root only), unmounted after the test; skip where none can be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_stops_the_run_with_one_message_and_its_checkpoint_intact(
    small_disk, cache_dir
):
    run = small_disk / "run"
    args = [*TINY, "train.steps=100000", "score.stop_on_collapse=false"]
    done = run_cli(*args, f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}")
    assert done.returncode == 1
    text = done.stdout + done.stderr
    assert "No space left on device" in text and f"resume={run}" in text
    assert "Traceback" not in text
    assert summary(run)["status"] == "failed"
    step = torch.load(run / "checkpoints/last.pt", weights_only=True)["step"]
    assert 0 < step <= summary(run)["steps_done"]
    files = [p for p in run.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]  # no temp file left behind
    assert not [p for p in files if p.stat().st_size == 0]  # no empty grid or checkpoint


# run.py with a disk that fills up at the third checkpoint, for machines where no tmpfs can be
# mounted: the OSError a full disk raises, at the place the tmpfs test meets it most
FULL_AT_THIRD_CHECKPOINT = """
import errno, os, sys
from gan.run.folder import RunFolder
save, calls = RunFolder.save_checkpoint, []
def save_checkpoint(self, state):
    calls.append(state["step"])
    if len(calls) == 3:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.checkpoint_path))
    save(self, state)
RunFolder.save_checkpoint = save_checkpoint
from gan.cli import main
sys.argv = ["run.py", *sys.argv[1:]]
main()
"""


def test_a_write_error_mid_run_is_one_message_and_loses_no_checkpoint(tmp_path, cache_dir):
    run = tmp_path / "run"
    args = [*TINY, "train.steps=100", f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}"]
    done = subprocess.run(
        [sys.executable, "-c", FULL_AT_THIRD_CHECKPOINT, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = done.stdout + done.stderr
    assert done.returncode == 1, text[-2000:]
    assert f"could not write {run}/checkpoints/last.pt (No space left on device)" in text
    assert "Traceback" not in text
    assert summary(run)["status"] == "failed" and summary(run)["steps_done"] == 30
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["step"] == 20


def test_a_truncated_checkpoint_is_named(finished_run, tmp_path):
    damaged = tmp_path / "damaged"
    (damaged / "checkpoints").mkdir(parents=True)
    (damaged / ".hydra").mkdir()
    (damaged / ".hydra/config.yaml").write_bytes((finished_run / ".hydra/config.yaml").read_bytes())
    data = (finished_run / "checkpoints/last.pt").read_bytes()
    (damaged / "checkpoints/last.pt").write_bytes(data[: len(data) // 2])
    done = run_cli(f"resume={damaged}", f"hydra.run.dir={tmp_path}/r")
    assert done.returncode == 2
    text = done.stdout + done.stderr
    assert f"{damaged}/checkpoints/last.pt cannot be read" in text
    assert "damaged or truncated" in text and "Traceback" not in text


class Payload:
    """Pickles to a call that creates a file: what a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_with_a_pickled_payload_is_refused(finished_run, tmp_path):
    evil = tmp_path / "evil"
    (evil / "checkpoints").mkdir(parents=True)
    (evil / ".hydra").mkdir()
    (evil / ".hydra/config.yaml").write_bytes((finished_run / ".hydra/config.yaml").read_bytes())
    marker = tmp_path / "payload_ran"
    torch.save({"step": 10, "gen": Payload(marker)}, evil / "checkpoints/last.pt")
    done = run_cli(f"resume={evil}", f"hydra.run.dir={tmp_path}/r")
    assert done.returncode == 2
    assert f"{evil}/checkpoints/last.pt was refused" in done.stdout + done.stderr
    assert not marker.exists()


def test_resume_with_another_width_is_one_clear_paragraph(finished_run, tmp_path):
    done = run_cli(f"resume={finished_run}", "model.gen_features=8", f"hydra.run.dir={tmp_path}/r")
    assert done.returncode == 2
    text = done.stdout + done.stderr
    assert "resume cannot change the model (model.gen_features=8)" in text
    assert "Traceback" not in text


def test_a_truncated_data_cache_is_named_and_built_again(tmp_path, caplog):
    cfg = make_cfg("data.num_images=16", cache_dir=tmp_path)
    images = load_images(cfg.data, 32)
    (cache,) = tmp_path.glob("*.npy")
    cache.write_bytes(cache.read_bytes()[:1000])
    assert torch.equal(load_images(cfg.data, 32), images)
    assert f"The data cache {cache} is damaged" in caplog.text
    assert np.load(cache).shape == tuple(images.shape)  # and it is whole again


def test_a_batch_larger_than_the_data_set_is_warned_about(tmp_path, caplog, cache_dir):
    from gan.run.train import train

    cfg = make_cfg("data.num_images=8", "train.steps=2", "eval.num_images=0", cache_dir=cache_dir)
    train(cfg, tmp_path / "run")
    assert "train.batch_size=16 is larger than the data set (8 images)" in caplog.text


def test_files_written_atomically_are_readable_by_others(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write(path, lambda tmp: tmp.write_text("x"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_write_error_names_the_file_not_its_temp_copy(tmp_path):
    def fail(tmp: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as e:
        atomic_write(tmp_path / "summary.json", fail)
    assert e.value.filename == str(tmp_path / "summary.json")
    assert list(tmp_path.iterdir()) == []


def test_compare_ranks_a_run_cut_short_below_finished_ones_and_quotes_commands(tmp_path):
    from gan.report.compare import main

    def run(name: str, status: str, score: float, steps_done: int, override: str) -> None:
        folder = tmp_path / "outputs" / name
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra/overrides.yaml").write_text(json.dumps([override]))
        (folder / ".hydra/config.yaml").write_text("optim:\n  gen_lr: 0.001\n")
        record = {"status": status, "score": score, "steps": 400, "steps_done": steps_done}
        (folder / "summary.json").write_text(json.dumps(record))

    run("collapsed", "collapsed", 0.6, 240, "optim.gen_lr=0.001")
    run("interrupted", "interrupted", 1.0, 115, "data.root=$(touch pwned)")
    out = tmp_path / "report.html"
    assert (
        main([str(tmp_path / "outputs"), "--csv", str(tmp_path / "r.csv"), "--html", str(out)]) == 0
    )
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert [r.split(",")[0].rsplit("/", 1)[-1] for r in rows[1:]] == ["collapsed", "interrupted"]
    assert "stopped at 115/400" in rows[2]
    assert "python run.py &#x27;data.root=$(touch pwned)&#x27;" in out.read_text()

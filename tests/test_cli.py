"""run.py end to end in a subprocess, as a user runs it: the run folder and its contracts, the
`pumpgan` console script and the commands' help."""

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

import gan.compare

from .conftest import CONF, ROOT, TINY, run_cli

SUMMARY_FIELDS = {
    "status",
    "score",
    "collapsed_at",
    "reason",
    "steps",
    "steps_done",
    "wall_s",
    "images_per_s",
    "quality",
    "versions",
}


@pytest.mark.slow
def test_run_writes_the_whole_run_folder(tmp_path, cache_dir):
    run = tmp_path / "run"
    result = run_cli(*TINY, "train.steps=30", f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        ".hydra/hydra.yaml",
        "run.log",
        "metrics.csv",
        "samples/step_000000.png",
        "samples/step_000010.png",
        "samples/final.png",
        "checkpoints/last.pt",
        "checkpoints/generator.pt",
        ".pumpgan-claim",
        "summary.json",
        "curves.png",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary.keys() >= SUMMARY_FIELDS
    assert summary["status"] in ("completed", "collapsed")
    assert 0 <= summary["score"] <= 1
    assert summary["steps_done"] == 30 or summary["status"] == "collapsed"
    assert summary["images_per_s"] > 0
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,time_s,loss_d,loss_g,d_real,d_fake,d_fake_after"
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert {"gen", "disc", "opt_g", "opt_d", "step", "rng", "score"} <= state.keys()
    assert f"score {summary['score']:.4f}" in (run / "run.log").read_text()
    # TensorBoard sees the same scalars and grids
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("train/d_real")) == summary["steps_done"]
    assert events.Scalars("score")[0].value == summary["score"]
    assert [e.step for e in events.Images("samples")][:3] == [0, 10, 20]
    diversity = events.Scalars("quality/diversity")
    assert [e.step for e in diversity][:3] == [0, 10, 20]
    assert diversity[-1].value == pytest.approx(summary["quality"]["diversity"], abs=1e-3)
    # TensorBoard's HParams tab: the run's settings against the final numbers
    from tensorboard.plugins.hparams import plugin_data_pb2

    hparams = EventAccumulator(str(run / "tensorboard" / "hparams"))
    hparams.Reload()
    assert hparams.Scalars("hparams/score")[0].value == summary["score"]
    assert hparams.Scalars("hparams/swd")[0].value == pytest.approx(summary["quality"]["swd"])
    start = plugin_data_pb2.HParamsPluginData.FromString(
        hparams.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info.hparams
    assert start["model"].string_value == "tiny" and start["train.steps"].number_value == 30
    # every key a shipped study searches, and each group's option, set on the command line or not
    assert start["optim.gen_lr"].number_value == pytest.approx(2e-4)
    assert start["augment"].string_value == "seed" and start["optim.loss"].string_value == "bce"


@pytest.mark.slow
def test_resume_cannot_swap_a_config_group(tmp_path, cache_dir):
    run = tmp_path / "run"
    assert (
        run_cli(
            *TINY, "train.steps=5", f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}"
        ).returncode
        == 0
    )
    result = run_cli(f"resume={run}", "model=small", f"hydra.run.dir={tmp_path / 'again'}")
    assert result.returncode == 2
    assert "resume cannot change a config group (model=small)" in result.stdout


@pytest.mark.slow
def test_folder_data_from_the_command_line(tmp_path, cache_dir):
    from PIL import Image

    images = tmp_path / "imgs" / "class_a"
    images.mkdir(parents=True)
    for i in range(6):
        Image.new("RGB", (40, 36), (40 * i, 100, 200)).save(images / f"{i}.png")
    run = tmp_path / "run"
    result = run_cli(
        *TINY,
        "data=folder",
        f"data.root={tmp_path / 'imgs'}",
        "train.steps=5",
        f"data.cache_dir={cache_dir}",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "summary.json").read_text())["data"]["num_images"] == 6


@pytest.mark.slow
def test_missing_folder_is_one_clear_paragraph(tmp_path: Path):
    result = run_cli(
        "data=folder", f"data.root={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2
    assert f"data.root='{tmp_path / 'nope'}' is not a folder" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


HELP_HEAD = [
    "pumpgan: train a DCGAN (on the built-in pumpkins, or your images with data=folder) and",
    "score the run by how long D(x) and D(G(z)) stay away from 0 and 1.",
    "`python run.py ARGS` and, once installed, `pumpgan ARGS` are the same command.",
    "",
    "== Config groups: pick an option with group=option ==",
]
HELP_EXAMPLES = [
    "== Examples ==",
    "python run.py optim.gen_lr=2e-3 model=medium   # one run: any option, any key",
    "python run.py -m sweep=quick                   # an Optuna study from sweeps/",
    "python run.py debug=default                    # a run of seconds, to try the setup",
    "",
    "== Config: change any key with group.key=value ==",
    "model:",
]
HELP_TAIL = [
    "Each run writes a folder under outputs/ (compare them: python -m gan.compare).",
    "Use --hydra-help for Hydra's own flags, --cfg job to print the config an override makes.",
]


@pytest.mark.slow
def test_help_lists_the_config_groups_and_examples(tmp_path):
    """`python run.py --help`, from any folder: the groups with their options (the YAML files
    under conf/), two example commands, the composed config; nothing written."""
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    groups = ["augment", "data", "debug", "hardware", "logger", "model", "optim", "sweep"]
    options = [
        f"{g}: {', '.join(sorted(p.stem for p in (CONF / g).glob('*.yaml')))}" for g in groups
    ]
    assert options[-1] == (
        "sweep: confirm, optuna, pareto, pbt, quick, seeds, stabilisers, stability, "
        "stability_unpruned"
    )
    lines = result.stdout.splitlines()
    head = [*HELP_HEAD, *options, "", *HELP_EXAMPLES]
    assert lines[: len(head)] == head
    assert lines[-3:] == ["", *HELP_TAIL]
    assert "  gen_features: 32" in result.stdout  # the default model's, from conf/model/small.yaml
    assert "  eps: 0.03" in lines  # score.eps
    assert list(tmp_path.iterdir()) == []


def command(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_pumpgan_console_script_is_run_py(tmp_path):
    """The project installs (`uv sync`, `pip install -e .`) with a `pumpgan` console script that
    is `python run.py`: the same help from any folder, the configs found in conf/."""
    (script,) = entry_points(group="console_scripts", name="pumpgan")
    assert script.value == "gan.cli:main"
    pumpgan = Path(sys.executable).parent / "pumpgan"
    installed = command(str(pumpgan), "--help", cwd=tmp_path, PYTHONWARNINGS="ignore")
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout == run_cli("--help", cwd=tmp_path).stdout
    assert installed.stdout.splitlines()[: len(HELP_HEAD)] == HELP_HEAD


@pytest.mark.slow
def test_compare_help_prints_its_whole_description():
    result = command(sys.executable, "-m", "gan.compare", "--help", cwd=ROOT, COLUMNS="100")
    assert result.returncode == 0, result.stderr
    doc = gan.compare.__doc__
    assert doc is not None
    assert result.stdout == "\n".join(
        [
            "usage: python -m gan.compare [-h] [--csv CSV] [--html HTML] [--sort {score,name}]",
            "                             [--export FILE.yaml]",
            "                             [PATH ...]",
            "",
            doc.strip(),
            "",
            "positional arguments:",
            "  PATH                 where to look for runs (outputs/)",
            "",
            "options:",
            "  -h, --help           show this help message and exit",
            "  --csv CSV            write the rows, all columns, to this CSV file",
            "  --html HTML          write a self-contained HTML report here",
            "  --sort {score,name}  best first, or by folder",
            "  --export FILE.yaml   write the answer's settings (the confirmed best, else the best"
            " finished",
            "                       run) as a config file; run it with python run.py --config-dir"
            " DIR --config-",
            "                       name NAME",
            "",
        ]
    )
    example = (
        "  uv run python -m gan.compare outputs/sweeps/quick --csv runs.csv --html report.html"
    )
    assert example in doc.splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dcgan", "seed"])
def test_a_run_of_an_earlier_version_resumes(tmp_path, cache_dir, arch):
    """A run folder written at commit 26fc4a1 (before gan/fast.py; its config still has the
    removed hardware.cpu_kernels) resumes: its checkpoint loads and training goes on."""
    old = tmp_path / "old"
    shutil.copytree(ROOT / "tests" / "fixtures" / "checkpoints_26fc4a1" / arch, old)
    resumed = tmp_path / "resumed"
    result = run_cli(
        f"resume={old}", "train.steps=6", f"data.cache_dir={cache_dir}", f"hydra.run.dir={resumed}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 6
    assert len((resumed / "metrics.csv").read_text().splitlines()) == 1 + 6

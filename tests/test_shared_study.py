"""One study on a real PostgreSQL server, shared by two sweep processes as by two machines, with
the README's command. The server: $PUMPGAN_TEST_POSTGRES (a URL; `.ci/run` starts one and sets
it), else a throwaway one started here from PostgreSQL's own binaries; the test is skipped, with
the reason, when neither can be had."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from .conftest import ROOT, TINY
from .test_sweep import check_shared_study, run_together, sweep_args

pytestmark = pytest.mark.slow


def readme_recipe() -> list[str]:
    """The command of the README's "Scaling out" for one study across machines."""
    section = (ROOT / "README.md").read_text().split("## Scaling out\n")[1].split("\n## ")[0]
    (command,) = [b for b in re.findall(r"```bash\n(.*?)```", section, re.S) if "postgresql" in b]
    return shlex.split(command.replace("\\\n", " "), comments=True)


def server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on the PATH, or Debian's newest PostgreSQL."""
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(str(shutil.which("initdb"))).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def throwaway_server() -> Iterator[str]:
    """A PostgreSQL server in a temporary folder, on 127.0.0.1 and a free port, with the
    superuser `pumpgan`; as the postgres user where the tests run as root (PostgreSQL refuses
    to run as root)."""
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server: set PUMPGAN_TEST_POSTGRES=postgresql://... or install the "
            "server (Debian: apt-get install postgresql)"
        )
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL refuses to run as root, and there is no postgres user")
        if shutil.which("runuser") is None:
            pytest.skip("PostgreSQL refuses to run as root, and runuser is missing")
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="pumpgan-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()

    def run(tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*as_user, str(bin_dir / tool), *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        init = run("initdb", "-D", str(data), "-U", "pumpgan", "-A", "trust", "--no-sync")
        if init.returncode != 0:
            pytest.skip(f"initdb could not make a server: {init.stderr.strip()[-500:]}")
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off"
        start = run(
            "pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "start"
        )
        if start.returncode != 0:
            log = (folder / "log").read_text()[-500:] if (folder / "log").exists() else ""
            pytest.skip(f"the PostgreSQL server did not start: {start.stderr.strip()} {log}")
        try:
            yield f"postgresql://pumpgan@127.0.0.1:{port}/postgres"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (a dev dependency) is missing")
    url = os.environ.get("PUMPGAN_TEST_POSTGRES")
    if url:
        yield url
    else:
        yield from throwaway_server()


def test_readme_recipe_shares_one_study_on_postgresql(postgres_url, tmp_path, cache_dir):
    """Two machines (two sweep processes, each its own sweep folder) run the README's command on
    one PostgreSQL study: its n_trials between them, distinct parameters, a folder per trial."""
    command = readme_recipe()
    assert command[:4] == ["uv", "run", "python", "run.py"]  # = this environment's python
    key = "hydra.sweeper.storage="
    assert [a for a in command if a.startswith(key)] == [
        f"{key}postgresql://USER:PASSWORD@HOST:5432/DB"
    ]
    recipe = [f"{key}{postgres_url}" if a.startswith(key) else a for a in command[4:]]
    name = f"pumpgan-test-{uuid.uuid4().hex[:8]}"  # a server of the user's may hold others
    machines = [tmp_path / "a", tmp_path / "b"]
    test_size = [
        *TINY,
        "hardware.threads=1",  # two processes on 2 cores
        "train.steps=40",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.study_name={name}",
    ]
    # sweep_args less its "-m", which the recipe has
    runs = run_together(
        *([*recipe, *sweep_args(sweep, cache_dir)[1:], *test_size] for sweep in machines)
    )
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        check_shared_study(study, 4, runs, machines)
        optuna.delete_study(study_name=name, storage=storage)
    finally:
        storage.engine.dispose()


def test_a_population_is_shared_on_postgresql(postgres_url, tmp_path, cache_dir):
    """Two sweep processes, each with its own sweep folder (as machines sharing a file system),
    train one population: each member's segment runs once, some in each process, and a segment
    continues its parent's checkpoint whichever process wrote it."""
    name = f"pumpgan-test-pbt-{uuid.uuid4().hex[:8]}"
    machines = [tmp_path / "a", tmp_path / "b"]
    population = [
        "sweep=pbt", "debug=default", "hardware.threads=1", "hydra.sweeper.pbt.population=2",
        "hydra.sweeper.pbt.interval=20", "train.steps=40", "train.checkpoint_every=20",
        # no collapse on two sample grids of a 20-step run, so that generation 1 always runs
        "score.min_diversity=0",
        f"hydra.sweeper.storage={postgres_url}", f"hydra.sweeper.study_name={name}",
    ]  # fmt: skip
    runs = run_together(*([*sweep_args(sweep, cache_dir), *population] for sweep in machines))
    for _, returncode, output in runs:
        assert returncode == 0, output[-3000:]
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        ran = [t for t in study.trials if "not_run" not in t.user_attrs]
        table = "\n".join(
            f"{t.number} {t.state.name} {dict(sorted(t.user_attrs.items()))}" for t in study.trials
        )
        assert sorted((t.user_attrs["generation"], t.user_attrs["member"]) for t in ran) == [
            (0, 0), (0, 1), (1, 0), (1, 1)
        ], table + "".join(o[-6000:] for _, _, o in runs)  # fmt: skip
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in ran), table
        assert not [t for t in study.trials if not t.state.is_finished()], table
        owners = {t.user_attrs["pumpgan_owner"] for t in ran}
        assert len(owners) == 2  # both processes ran segments
        for t in ran:
            if t.user_attrs["generation"] == 1:
                parent = study.trials[t.user_attrs["parent_trial"]]
                assert t.user_attrs["resumed"] == parent.user_attrs["run_dir"]
                assert Path(t.user_attrs["run_dir"]).parent in machines
        optuna.delete_study(study_name=name, storage=storage)
    finally:
        storage.engine.dispose()

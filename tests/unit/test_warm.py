"""Warm job processes (ser_pipeline/warm.py): a job forked from a preloaded server must be
indistinguishable from a plain ``python -m ser_pipeline`` run: same files, same output,
same exit status; and the server must never be used where it could change a result."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ser_pipeline import warm

from test_training_core import corpus, spec  # noqa: E402,F401  (the synthetic corpus fixture)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not warm.supported(), reason="no warm processes here (a GPU device node, or no fork)")


@pytest.fixture
def tmp_path():  # short: a Unix socket's path must fit in about 100 bytes
    folder = Path(tempfile.mkdtemp(prefix="serwarm-test-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _env(tmp_path, warm_on: bool) -> dict:
    env = {**os.environ, "SER_WARM_DIR": str(tmp_path), "SER_WARM_IDLE": "20", "PYTHONPATH": str(REPO)}
    env["SER_WARM"] = "1" if warm_on else "0"
    return env


def _run(args, tmp_path, warm_on, cwd=None):
    return subprocess.run([sys.executable, "-m", "ser_pipeline", *args], cwd=cwd or REPO, env=_env(tmp_path, warm_on),
                          capture_output=True, text=True, timeout=600)


def _servers(tmp_path) -> list[str]:
    return [line for log in tmp_path.glob("*.sock.log") for line in log.read_text().splitlines() if "ready" in line]


def test_a_warm_training_job_writes_what_a_plain_one_writes(corpus, tmp_path):
    outs = {}
    for mode in (True, False):
        s = spec(corpus, "mean_pool", fold_file="loso.json", model_dir=tmp_path / f"model_{mode}")
        out = tmp_path / f"result_{mode}.json"
        res = _run(["train", "--spec", json.dumps(s), "--out", str(out), "--model-dir", s["model_dir"]],
                   tmp_path, mode)
        assert res.returncode == 0, res.stderr
        outs[mode] = json.loads(out.read_text())
    assert len(_servers(tmp_path)) == 1  # the warm run went through a server; the plain one did not
    for key in set(outs[True]) | set(outs[False]):
        if key not in ("wall_seconds", "model_dir"):
            assert outs[True].get(key) == outs[False].get(key), key
    for f in (tmp_path / "model_True").iterdir():
        assert f.read_bytes() == (tmp_path / "model_False" / f.name).read_bytes(), f.name


def test_exit_status_output_and_errors_are_the_jobs_own(tmp_path):
    tables = tmp_path / "t.md"
    tables.write_text("| a |\n|---|\n| 1 |\n")
    for mode in (True, False):
        ok = _run(["summary", "--out", str(tmp_path / f"s_{mode}.md"), str(tables)], tmp_path, mode)
        assert ok.returncode == 0 and ok.stdout.strip() == f"wrote {tmp_path / f's_{mode}.md'}"
        bad = _run(["summary", "--no-such-option"], tmp_path, mode)
        assert bad.returncode == 2 and "No such option" in bad.stderr
        broken = _run(["train", "--spec", "{}", "--out", str(tmp_path / "x.json")], tmp_path, mode)
        assert broken.returncode == 1 and "KeyError" in broken.stderr
    assert not (tmp_path / "x.json").exists()
    assert len(_servers(tmp_path)) == 1  # one server served every warm call


def test_a_killed_job_reports_failure_and_writes_nothing(corpus, tmp_path):
    s = spec(corpus, "mean_pool", fold_file="loso.json", train={"epochs": 100000})
    out = tmp_path / "r.json"
    _run(["summary", "--no-such-option"], tmp_path, True)  # start the server first
    p = subprocess.Popen([sys.executable, "-m", "ser_pipeline", "train", "--spec", json.dumps(s), "--out", str(out)],
                         cwd=REPO, env=_env(tmp_path, True), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    p.send_signal(signal.SIGTERM)  # what Snakemake sends to a job it cancels
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "ended without an exit status" in err
    assert not out.exists()


def test_not_used_where_it_could_change_a_result(monkeypatch):
    monkeypatch.delenv("SER_WARM", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(warm, "GPU_NODES", ())
    assert warm.enabled(["train", "--spec", "{}"])
    assert not warm.enabled(["extract", "--spec", "{}"])  # may use a GPU and its own threads
    assert not warm.enabled(["train", "--help"])
    assert not warm.enabled([])
    monkeypatch.setenv("SER_WARM", "0")
    assert not warm.enabled(["train"])
    monkeypatch.delenv("SER_WARM")
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    assert not warm.enabled(["train"])
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setattr(warm, "GPU_NODES", (os.devnull,))  # a device node that exists
    assert not warm.enabled(["train"])


def test_the_server_name_changes_with_what_libraries_read_when_they_load(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = warm.server_key()
    assert warm.server_key() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert warm.server_key() != before
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("SOME_OTHER_VARIABLE", "x")  # passed to the job, not fixed by the server
    assert warm.server_key() == before
    monkeypatch.setattr(warm, "PACKAGE_PARENT", "/another/copy/of/the/code")  # its own server
    assert warm.server_key() != before


def test_an_edit_of_the_package_acts_at_the_next_warm_job(tmp_path):
    """The server imports no ser_pipeline module a job runs: each job reads the code from disk."""
    copy = tmp_path / "code"
    shutil.copytree(REPO / "ser_pipeline", copy / "ser_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    table = tmp_path / "t.md"
    table.write_text("| a |\n")
    env = {**_env(tmp_path, True), "PYTHONPATH": str(copy)}

    def summary():
        res = subprocess.run([sys.executable, "-m", "ser_pipeline", "summary", "--out", str(tmp_path / "s.md"),
                              str(table)], cwd=copy, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return res.stdout

    assert summary().startswith("wrote ")
    module = copy / "ser_pipeline" / "commands" / "summary.py"
    module.write_text(module.read_text().replace('click.echo(f"wrote {out}")', 'click.echo(f"edited {out}")'))
    assert summary().startswith("edited ")
    assert len(_servers(tmp_path)) == 1  # the same server ran both jobs

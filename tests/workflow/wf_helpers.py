"""A copy of the repository per test session, run end to end on the toy config.

Running from a copy (with PYTHONPATH pointing at it) lets the incremental-rerun tests edit
a model's source file without touching the real tree.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".venv", ".git", "results", ".snakemake", "__pycache__", "*.egg-info",
                                ".pytest_cache", "report.html", ".whl", ".gl")


def snakemake_env(root: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(root)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env.pop("SER_RECORD_IMPORTS", None)
    return env


def snakemake(root: Path, *args: str, check: bool = True, timeout: int = 1800,
              env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=root, env={**snakemake_env(root), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run into {rule: count}."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    stats = text.split("Job stats:")[-1]
    jobs = {}
    for line in stats.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def dry_run_outputs(proc: subprocess.CompletedProcess) -> list[str]:
    text = proc.stdout + proc.stderr
    return re.findall(r"^\s+output: (.+)$", text, flags=re.M)


def dry_run_jobs(proc: subprocess.CompletedProcess) -> list[dict]:
    """Every planned job of a dry run: {"rule", "output" (its first output), "reason"}."""
    jobs, cur = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"^(?:local)?rule (\S+):$", line.strip())
        if m:
            cur = {"rule": m.group(1), "output": None, "reason": ""}
            jobs.append(cur)
        elif cur is not None and line.strip().startswith("output: ") and cur["output"] is None:
            cur["output"] = line.strip()[len("output: "):].split(", ")[0]
        elif cur is not None and line.strip().startswith("reason: "):
            cur["reason"] = line.strip()[len("reason: "):]
    return [j for j in jobs if j["rule"] != "all"]


def copy_repo(dest: Path, config: Path) -> Path:
    shutil.copytree(REPO, dest, ignore=IGNORE)
    shutil.copy(config, dest / "config.yaml")
    return dest



"""The default run from scratch, timed: wall time, job-seconds per stage and per model, and
the fixed cost of a job (process start + imports).

Copies the repository to a temporary folder (or --workdir), runs ``snakemake --cores N`` on
config.yaml there (demo corpora and features included), and prints:
  - Snakemake's wall time for the whole run and the machine load before and after,
  - job-seconds per stage (from the rules' `benchmark:` files),
  - job-seconds per model (training jobs, summed over folds / sizes / seeds),
  - per-job fixed overhead: a job's benchmark seconds minus the seconds its own code
    reported (`wall_seconds` in a training result), i.e. process start and imports.
So the "default run under N minutes" target is checked by a command, not a timed test.
Usage: python benchmarks/bench_default_run.py [--cores 2] [--workdir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".venv", ".git", "results*", ".snakemake", "__pycache__", "*.egg-info",
                                ".pytest_cache", "report.html", ".whl", ".gl")


def _bench_seconds(tsv: Path) -> float | None:
    lines = tsv.read_text().splitlines()
    return float(lines[1].split("\t")[0]) if len(lines) >= 2 else None


def summarise(results: Path) -> None:
    bench = results / "benchmarks"
    per_stage, count = defaultdict(float), defaultdict(int)
    per_model = defaultdict(float)
    overheads = []
    for tsv in bench.rglob("*.tsv"):
        rel = tsv.relative_to(bench)
        secs = _bench_seconds(tsv)
        if secs is None:
            continue
        stage = rel.parts[0]
        if stage == "features":
            stage = f"features/{rel.stem}"
        per_stage[stage] += secs
        count[stage] += 1
        if rel.parts[0] == "runs":
            model = rel.parts[3]
            per_model[model] += secs
            run = results / "runs" / rel.with_suffix(".json").relative_to("runs")
            if run.is_file():
                own = json.loads(run.read_text()).get("wall_seconds")
                if own is not None:
                    overheads.append(secs - float(own))
    print(f"\n{'stage':28s} {'jobs':>5s} {'job-seconds':>12s}")
    for stage in sorted(per_stage):
        print(f"{stage:28s} {count[stage]:5d} {per_stage[stage]:12.1f}")
    print(f"{'total':28s} {sum(count.values()):5d} {sum(per_stage.values()):12.1f}")
    print(f"\n{'model (training jobs)':28s} {'job-seconds':>12s}")
    for model, secs in sorted(per_model.items(), key=lambda kv: -kv[1]):
        print(f"{model:28s} {secs:12.1f}")
    if overheads:
        print(f"\nper-job fixed overhead (benchmark s - the job's own wall_seconds), {len(overheads)} training jobs: "
              f"min {min(overheads):.2f} s, median {statistics.median(overheads):.2f} s, "
              f"max {max(overheads):.2f} s, sum {sum(overheads):.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", help="run here instead of a temporary folder (kept)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--summarise-only", metavar="RESULTS", help="only print the tables of a finished run")
    args = ap.parse_args()
    if args.summarise_only:
        summarise(Path(args.summarise_only))
        return
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ser-default-run-"))
    if not (work / "Snakefile").exists():
        shutil.copytree(REPO, work, ignore=IGNORE, dirs_exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(work), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}; {os.cpu_count()} CPUs; load before {os.getloadavg()}; "
          f"workdir {work}", flush=True)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(args.cores)], cwd=work, env=env,
                          capture_output=True, text=True)
    wall = time.time() - t0
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    print(f"snakemake exit {proc.returncode}; wall {wall:.0f} s ({wall / 60:.1f} min); load after "
          f"{os.getloadavg()}\n  " + "\n  ".join(tail))
    summarise(work / "results")
    if not (args.workdir or args.keep):
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()

"""Dry-run time and job count of the full IEMOCAP reproduction (config/iemocap.yaml).

Goal: the dry run of every model x fold x data size x seed job stays under 15 s. Needs no
data: the job graph is known from the config alone (fold ids come from the config).
Usage: python benchmarks/bench_dag.py [--config config/iemocap.yaml]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default=str(REPO / "config" / "iemocap.yaml"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(args.config, work / "config.yaml")
        times, jobs = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1",
                                   "--snakefile", str(REPO / "Snakefile"), "--directory", str(work)],
                                  capture_output=True, text=True, cwd=work)
            times.append(time.perf_counter() - t0)
            if proc.returncode:
                sys.exit(proc.stdout + proc.stderr)
            m = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, flags=re.M)
            jobs = int(m.group(1)) if m else None
            stats = (proc.stdout + proc.stderr).split("Job stats:")[-1].split("Reasons:")[0].strip()
    print(f"config: {args.config}")
    print(stats)
    print(f"dry-run wall time: min {min(times):.2f} s, max {max(times):.2f} s over {args.repeats} runs "
          f"for {jobs} jobs (goal < 15 s)")


if __name__ == "__main__":
    main()

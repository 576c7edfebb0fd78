"""Training with glibc's default malloc settings vs ser_pipeline.allocator's, side by side.

Runs the same training job (Ma et al.'s CRNN with the demo config's sizes on 3 s segments
of a synthetic 200-bin spectrogram corpus, the shape of the demo's ma_fixed jobs) as plain
``python -m ser_pipeline train`` subprocesses, alternating SER_KEEP_FREED_MEMORY=0 (glibc's
defaults) and 1 (ser_pipeline.allocator.SETTINGS), and prints for each the min and median of
wall seconds, kernel (system) CPU seconds and minor page faults, the largest peak resident
memory, the ratio of the wall times, and whether both wrote the same result.
Usage: python benchmarks/bench_allocator.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_job_start import REPO, build_corpus, job_spec
from step_timing import load

MA_DEMO = {"conv_channels": [8, 8, 16], "kernel_sizes": [[5, 5], [3, 3], [3, 3]],
           "pool_sizes": [[1, 4], [2, 5], [2, 5]], "rnn_hidden": 64, "fc_units": 32}


def run_job(spec: dict, out: Path, keep: bool) -> dict:
    env = {**os.environ, "SER_WARM": "0", "SER_KEEP_FREED_MEMORY": "1" if keep else "0"}
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "ser_pipeline", "train", "--spec", json.dumps(spec),
                                 "--out", str(out), "--threads", "1"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this job's own resource use
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"job failed (keep={keep}):\n{err.read().decode()}")
    return {"wall": wall, "sys": usage.ru_stime, "faults": usage.ru_minflt, "rss": usage.ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="serbench-", dir="/tmp") as tmp:
        folder = Path(tmp)
        build_corpus(folder, dim=200, frames=(200, 600))
        spec = job_spec(folder, "ma_crnn", {"epochs": 4, "batch_size": 16, "lr": 1e-3, "input_mode": "segments",
                                             "segment_seconds": 3.0}, MA_DEMO)
        print(f"# {time.strftime('%F %T')}, load average {load()}, "
              f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")
        runs: dict[str, list[dict]] = {"glibc default": [], "keep freed": []}
        for r in range(args.repeats):
            for name in (("glibc default", "keep freed") if r % 2 == 0 else ("keep freed", "glibc default")):
                runs[name].append(run_job(spec, folder / f"{name.replace(' ', '_')}.json", name == "keep freed"))
        a, b = (json.loads((folder / f"{n.replace(' ', '_')}.json").read_text()) for n in runs)
        same = a["metrics"] == b["metrics"] and a["predictions"] == b["predictions"]
        print(f"{'malloc':14s} {'wall min':>9s} {'median':>7s} {'sys min':>8s} {'median':>7s} "
              f"{'faults min':>11s} {'median':>9s} {'peak MB':>8s}")
        for name, rs in runs.items():
            col = {k: [x[k] for x in rs] for k in ("wall", "sys", "faults", "rss")}
            print(f"{name:14s} {min(col['wall']):9.2f} {statistics.median(col['wall']):7.2f} "
                  f"{min(col['sys']):8.2f} {statistics.median(col['sys']):7.2f} "
                  f"{min(col['faults']):11d} {statistics.median(col['faults']):9.0f} {max(col['rss']):8.0f}")
        d, k = ([x["wall"] for x in runs[n]] for n in runs)
        print(f"default/keep wall: {min(d) / min(k):.2f}x (min), {statistics.median(d) / statistics.median(k):.2f}x "
              f"(median); same result: {same}")
        print(f"# done, load average {load()}")


if __name__ == "__main__":
    main()

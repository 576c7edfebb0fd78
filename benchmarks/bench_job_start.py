"""A job's fixed cost, warm vs plain start, measured side by side.

Runs the same small training jobs (a neural mean-pooling head and a logistic regression on
a synthetic 3-session corpus) as ``python -m ser_pipeline train`` subprocesses, alternating
a plain start (SER_WARM=0: a fresh interpreter imports torch and the rest) with a warm one
(forked from ser_pipeline.warm's preloaded server), and prints the min and median wall time
of each and their ratio. The first warm call, which starts the server, is timed apart.
Also checks that both starts wrote the same result (metrics and predictions).
Usage: python benchmarks/bench_job_start.py [--repeats 7]
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
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ser_pipeline.manifest import normalise, write_manifest  # noqa: E402
from ser_pipeline.protocols.folds import write_fold_file  # noqa: E402
from ser_pipeline.store import write_store  # noqa: E402
from step_timing import load  # noqa: E402


def build_corpus(folder: Path, dim: int = 6, frames: tuple[int, int] = (100, 400)) -> None:
    """3 sessions x 2 speakers x 4 classes x 8 utterances of ``dim``-dim frames at 100 per
    second, ``frames`` long (class in one dim)."""
    rng = np.random.default_rng(0)
    rows = []
    with write_store(folder / "f.zarr", dim, {"extractor": "synthetic", "frame_rate": 100.0}) as w:
        for s in (1, 2, 3):
            for g in "FM":
                for ci, lab in enumerate(("neu", "hap", "sad", "ang")):
                    for k in range(8):
                        u = f"Ses0{s}{g}_{lab}_{k}"
                        x = rng.normal(size=(int(rng.integers(*frames)), dim)).astype(np.float32)
                        x[:, ci] += 1.0
                        w.add(u, x)
                        rows.append({"utt_id": u, "audio_path": "/dev/null", "speaker": f"Ses0{s}{g}",
                                     "session": f"Ses0{s}", "label": lab})
    df = normalise(pd.DataFrame(rows), "synth")
    write_manifest(df, folder / "manifest.csv")
    write_fold_file(df, {"scheme": "leave_one_session_out", "labels": {"classes": ["neu", "hap", "sad", "ang"]}},
                    folder / "loso.json", "synth", "loso")


def job_spec(folder: Path, arch: str, train: dict, hparams: dict | None = None) -> dict:
    return {"model_name": arch, "model": {"arch": arch, "inputs": {"audio": "f"}, "hparams": hparams or {},
                                          "train": train},
            "corpus": "synth", "protocol": "loso", "fold": "f01", "size": "full", "seed": 0, "device": "cpu",
            "manifest": str(folder / "manifest.csv"), "fold_file": str(folder / "loso.json"),
            "stores": {"audio": str(folder / "f.zarr")}, "augment_stores": {}}


def run_job(spec: dict, out: Path, warm: bool, sock_dir: Path) -> float:
    env = {**os.environ, "SER_WARM": "1" if warm else "0", "SER_WARM_DIR": str(sock_dir)}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "ser_pipeline", "train", "--spec", json.dumps(spec), "--out", str(out),
                          "--threads", "1"], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"job failed ({'warm' if warm else 'plain'}):\n{res.stderr}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    from ser_pipeline import warm as warm_mod

    if not warm_mod.supported():
        sys.exit("warm starts are not used on this machine (GPU device node or no fork): nothing to compare")
    folder = Path(tempfile.mkdtemp(prefix="serbench-", dir="/tmp"))
    try:
        build_corpus(folder)
        jobs = {"neural mean_pool, 20 epochs": job_spec(folder, "mean_pool", {"epochs": 20, "lr": 3e-3}),
                "logistic regression": job_spec(folder, "logreg", {})}
        print(f"# {time.strftime('%F %T')}, load average {load()}, "
              f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")
        first = run_job(jobs["logistic regression"], folder / "first.json", True, folder)
        print(f"first warm call (starts the server, then runs the job): {first:.2f} s")
        rows = []
        for name, spec in jobs.items():
            times = {"plain": [], "warm": []}
            for r in range(args.repeats):
                for mode in (("plain", "warm") if r % 2 == 0 else ("warm", "plain")):  # interleaved
                    times[mode].append(run_job(spec, folder / f"{mode}.json", mode == "warm", folder))
            a, b = (json.loads((folder / f"{m}.json").read_text()) for m in ("plain", "warm"))
            same = a["metrics"] == b["metrics"] and a["predictions"] == b["predictions"]
            rows.append((name, times, same))
        print(f"{'job':30s} {'start':6s} {'min s':>7s} {'median s':>9s}")
        for name, times, same in rows:
            for mode in ("plain", "warm"):
                print(f"{name:30s} {mode:6s} {min(times[mode]):7.2f} {statistics.median(times[mode]):9.2f}")
            print(f"{'':30s} plain/warm: {min(times['plain']) / min(times['warm']):.1f}x (min), "
                  f"{statistics.median(times['plain']) / statistics.median(times['warm']):.1f}x (median); "
                  f"same result: {same}")
        print(f"# done, load average {load()}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

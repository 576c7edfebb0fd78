"""Peak RSS of feature extraction at 1x and 4x the demo corpus, side by side.

The 4x manifest repeats the 1x one four times under new utterance ids (same audio), so
only the corpus size changes. Extraction streams into the store, so peak memory should
stay flat while the store grows 4x.
Usage: python benchmarks/bench_memory.py --manifest results/corpora/demo/manifest.csv [--feature lld]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(manifest: Path, out: Path, spec: dict) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "ser_pipeline", "extract", "--manifest", str(manifest), "--spec",
           json.dumps({"feature": spec}), "--out", str(out), "--device", "cpu", "--threads", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    stdout = proc.stdout.read().decode()
    if status != 0:
        sys.exit(f"extraction failed: {' '.join(cmd)}")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return usage.ru_maxrss / 1024, size / 1e6  # ru_maxrss is KiB on Linux


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--manifest", default="results/corpora/demo/manifest.csv")
    ap.add_argument("--feature", default="lld", help="a features: entry of config.yaml")
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    args = ap.parse_args()
    spec = yaml.safe_load(Path(args.config).read_text())["features"][args.feature]
    df = pd.read_csv(args.manifest, keep_default_na=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = pd.concat([df.assign(utt_id=df["utt_id"] + f"_copy{k}") for k in range(4)], ignore_index=True)
        rows = []
        for name, frame in (("1x", df), ("4x", big)):
            m = tmp / f"{name}.csv"
            frame.to_csv(m, index=False)
            rss, mb = run(m, tmp / f"{name}.zarr", spec)
            rows.append((name, len(frame), frame["duration"].astype(float).sum() / 3600, rss, mb))
    print(f"feature {args.feature} ({spec['extractor']}), CPU")
    print(f"{'size':5s} {'utts':>6s} {'hours':>6s} {'peak RSS MB':>12s} {'store MB':>9s}")
    for name, n, h, rss, mb in rows:
        print(f"{name:5s} {n:6d} {h:6.2f} {rss:12.0f} {mb:9.1f}")
    print(f"ratio peak RSS 4x/1x: {rows[1][3] / rows[0][3]:.2f} (store grew {rows[1][4] / rows[0][4]:.2f}x)")


if __name__ == "__main__":
    main()

"""Feature store bulk read vs a plain .npy of the same array, measured side by side.

Writes N utterances of T x D float32 frames once into our Zarr store and into one .npy
file, then times loading every utterance (store: FeatureStore.load, one bulk read + slicing;
npy: np.load + the same slicing). Prints both and the ratio.
Usage: python benchmarks/bench_store.py [--n 1000 --frames 300 --dim 1024]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ser_pipeline.store import FeatureStore, write_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    lengths = rng.integers(args.frames // 2, args.frames * 3 // 2, size=args.n)
    ids = [f"u{i:06d}" for i in range(args.n)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        block = rng.normal(size=(int(lengths.sum()), args.dim)).astype(np.float32)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        t0 = time.perf_counter()
        with write_store(tmp / "s.zarr", args.dim, {"extractor": "bench"}) as w:
            for i, u in enumerate(ids):
                w.add(u, block[offsets[i]:offsets[i + 1]])
        t_write = time.perf_counter() - t0
        np.save(tmp / "s.npy", block)
        gb = block.nbytes / 1e9
        del block

        def read_store():
            return FeatureStore(tmp / "s.zarr").load(ids)

        def read_npy():
            arr = np.load(tmp / "s.npy")
            return [arr[offsets[i]:offsets[i + 1]] for i in range(args.n)]

        for fn in (read_store, read_npy):
            fn()  # warm-up
        res = {}
        for name, fn in (("zarr store", read_store), ("plain .npy", read_npy)):
            ts = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = fn()
                ts.append(time.perf_counter() - t0)
                assert len(out) == args.n
            res[name] = min(ts)
        size = sum(f.stat().st_size for f in (tmp / "s.zarr").rglob("*") if f.is_file()) / 1e9
    print(f"{args.n} utterances x ~{args.frames} frames x {args.dim} dims float32 = {gb:.2f} GB "
          f"(store on disk {size:.2f} GB, written in {t_write:.1f} s); warm page cache (both read the same way after a warm-up read); cpus={os.cpu_count()}")
    for name, t in res.items():
        print(f"{name:12s} read all: {t:.3f} s  ({gb / t:.2f} GB/s)")
    print(f"ratio store/npy time: {res['zarr store'] / res['plain .npy']:.2f}x")


if __name__ == "__main__":
    main()

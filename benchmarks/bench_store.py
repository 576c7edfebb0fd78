"""Feature store fold reads vs h5py reading the same rows, measured side by side.

Writes N utterances (lengths uniform in [min, max] frames) x D float32 frames with the
production writer (ser_pipeline.store.write_store) and as one contiguous h5py dataset, then
times loading a fold, with the contenders interleaved in every repeat:
- contiguous: the utterances in one contiguous range of the store, `--fraction` of them;
- scattered: a random `--fraction` of the utterances, in random order.
store = FeatureStore(path).load(ids): open, metadata/offset/id checks, every touched chunk
verified (crc32c + finite check), utterances returned as arrays. h5py = open the file, read
exactly the selected rows (adjacent utterances merged into one read_direct each) into one
buffer, utterances returned as views: h5py's best case for the same output.
warm: after a warm-up read of each contender. cold: before every timed read, every file of
both contenders is written back (fsync) and dropped from the page cache with
posix_fadvise(POSIX_FADV_DONTNEED); `fincore` reports what was left resident.

--sweep measures the settings the production ones were picked from, each against h5py in
its own interleaved round (so at most three copies of the data are on disk at once): chunk
size, codec (none / lz4 / zstd via numcodecs, as the production writer writes them), read
threads, zarr's own array slicing as the read path (no verification), and a Zarr v3 sharded
array written and read by zarr itself. --burn K adds K CPU-burning processes during a final
round, to see how the thread settings behave under load.
Usage: python benchmarks/bench_store.py [--dims 512 1024] [--sweep] [--burn 2]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(rng_seed: int, n: int, lo: int, hi: int, dim: int):
    rng = np.random.default_rng(rng_seed)
    lengths = rng.integers(lo, hi + 1, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = [f"u{i:06d}" for i in range(n)]

    def utterance(i: int) -> np.ndarray:  # regenerated on demand: the corpus never sits in memory
        r = np.random.default_rng([rng_seed, i])
        return r.normal(size=(int(lengths[i]), dim)).astype(np.float32)

    return ids, offsets, utterance


def write_h5(path: Path, offsets, utterance, dim: int) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        ds = f.create_dataset("frames", shape=(int(offsets[-1]), dim), dtype="float32")  # contiguous
        for i in range(len(offsets) - 1):
            ds[offsets[i]:offsets[i + 1]] = utterance(i)


def write_prod(path: Path, ids, utterance, dim: int, **kw) -> float:
    from ser_pipeline.store import write_store

    t0 = time.perf_counter()
    with write_store(path, dim, {"extractor": "bench"}, **kw) as w:
        for i, u in enumerate(ids):
            w.add(u, utterance(i))
    return time.perf_counter() - t0


def write_zarr_sharded(path: Path, offsets, utterance, dim: int, shard_bytes: int, chunk_bytes: int) -> None:
    import zarr

    rows_c = max(1, chunk_bytes // (dim * 4))
    rows_s = max(rows_c, shard_bytes // (dim * 4) // rows_c * rows_c)
    a = zarr.create_array(str(path), shape=(int(offsets[-1]), dim), chunks=(rows_c, dim), shards=(rows_s, dim),
                          dtype="float32", compressors=None, fill_value=0.0)
    n = len(offsets) - 1
    i = 0
    while i < n:  # whole shards at a time: a sharded array is written shard by shard
        j = i
        while j < n and offsets[j + 1] - offsets[i] < rows_s:
            j += 1
        j = max(j, i + 1)
        a[offsets[i]:offsets[j]] = np.concatenate([utterance(k) for k in range(i, j)])
        i = j


def h5_reader(path: Path, offsets):
    import h5py

    def read(rows: np.ndarray):
        order = np.argsort(offsets[rows], kind="stable")
        srt = rows[order]
        starts, ends = offsets[srt], offsets[srt + 1]
        total = int((ends - starts).sum())
        with h5py.File(path, "r") as f:
            ds = f["frames"]
            buf = np.empty((total, ds.shape[1]), dtype=np.float32)
            pos = np.concatenate([[0], np.cumsum(ends - starts)])
            brk = np.flatnonzero(starts[1:] != ends[:-1]) + 1  # merge adjacent utterances
            run_a = np.concatenate([[0], brk])
            run_b = np.concatenate([brk, [len(srt)]])
            for a, b in zip(run_a, run_b):
                ds.read_direct(buf, np.s_[starts[a]:ends[b - 1]], np.s_[pos[a]:pos[b]])
        out = [None] * len(rows)
        for k, o in enumerate(order):
            out[o] = buf[pos[k]:pos[k + 1]]
        return out

    return read


def store_reader(path: Path, ids, threads: int | None = None, piece_bytes: int | None = None):
    import ser_pipeline.store as store

    def read(rows: np.ndarray):
        keep = store.PIECE_BYTES
        store.PIECE_BYTES = piece_bytes or keep
        try:
            return store.FeatureStore(path, threads=threads).load([ids[r] for r in rows])
        finally:
            store.PIECE_BYTES = keep

    return read


def zarr_slicing_reader(path: Path, offsets, array: str | None = "frames"):
    """The previous read path: zarr array slicing of the span the rows cover, then views."""
    import zarr

    def read(rows: np.ndarray):
        a = zarr.open_array(str(path / array) if array else str(path), mode="r")
        lo, hi = int(offsets[rows].min()), int(offsets[rows + 1].max())
        block = a[lo:hi]
        return [block[offsets[r] - lo:offsets[r + 1] - lo] for r in rows]

    return read


def files_of(paths) -> list[str]:
    out = []
    for p in paths:
        p = Path(p)
        out += [str(f) for f in (p.rglob("*") if p.is_dir() else [p]) if f.is_file()]
    return out


def drop_cache(files: list[str]) -> None:
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_bytes(files: list[str]) -> int | None:
    if not shutil.which("fincore"):
        return None
    total = 0
    for k in range(0, len(files), 500):
        res = subprocess.run(["fincore", "-b", "-n", "-o", "RES", *files[k:k + 500]],
                             capture_output=True, text=True)
        total += sum(int(x) for x in res.stdout.split())
    return total


def run_round(contenders: dict, selections: dict, modes, repeats: int, files: list[str], gb_of) -> dict:
    """Times every contender on every selection, interleaved (order rotates per repeat)."""
    names = list(contenders)
    res = {}
    for mode in modes:
        for sel_name, rows in selections.items():
            if mode == "warm":
                for n in names:
                    contenders[n](rows)
            times = {n: [] for n in names}
            left = []
            for rep in range(repeats):
                for n in names[rep % len(names):] + names[:rep % len(names)]:
                    if mode == "cold":
                        drop_cache(files)
                        if rep == 0:
                            left.append(resident_bytes(files))
                    t0 = time.perf_counter()
                    out = contenders[n](rows)
                    times[n].append(time.perf_counter() - t0)
                    assert len(out) == len(rows)
                    del out
            res[(mode, sel_name)] = (times, left)
    return res


def print_round(title: str, res: dict, gb: dict, ref: str = "h5py") -> None:
    print(f"\n## {title}")
    print(f"{'cache':5s} {'fold':10s} {'contender':34s} {'min s':>7s} {'median s':>9s} {'GB/s':>6s} "
          f"{'min/h5py':>8s} {'med/h5py':>8s}")
    for (mode, sel), (times, left) in res.items():
        rmin, rmed = min(times[ref]), float(np.median(times[ref]))
        for n, ts in times.items():
            print(f"{mode:5s} {sel:10s} {n:34s} {min(ts):7.3f} {np.median(ts):9.3f} {gb[sel] / min(ts):6.2f} "
                  f"{min(ts) / rmin:8.2f} {np.median(ts) / rmed:8.2f}")
        if mode == "cold" and left and left[0] is not None:
            print(f"      (page cache left resident after each drop, by fincore: max {max(left) / 1e6:.1f} MB)")


def burn() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2147483648


def thread_settings() -> str:
    import numcodecs
    import zarr

    from ser_pipeline.store import READ_THREADS

    try:
        blosc = numcodecs.blosc.get_nthreads()
    except Exception:
        blosc = "n/a"
    return (f"threads: ser_pipeline.store.READ_THREADS={READ_THREADS}, numcodecs blosc nthreads={blosc}, "
            f"zarr async.concurrency={zarr.config.get('async.concurrency')}, "
            f"zarr threading.max_workers={zarr.config.get('threading.max_workers')}, "
            f"cpus={os.cpu_count()} (affinity {len(os.sched_getaffinity(0))})")


def verification_cost(path: Path) -> str:
    """The checksum + finite check alone over up to 64 frames chunks, from memory (no I/O)."""
    from ser_pipeline.store import CHECKSUM, FeatureStore, _crc

    st = FeatureStore(path)
    arr = st.arrays["frames"]
    blocks = [arr.read(i, np.empty((arr.chunk_rows, arr.row_shape[0]), arr.dtype))
              for i in range(min(arr.n_chunks, 64))]
    nbytes = sum(b.nbytes for b in blocks)
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        for b in blocks:
            _crc(b)
            np.isfinite(b).all()
        best.append(time.perf_counter() - t0)
    return f"verification alone ({CHECKSUM} + finite check, in memory, 1 thread): {nbytes / min(best) / 1e9:.2f} GB/s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="utterances")
    ap.add_argument("--min-frames", type=int, default=100)
    ap.add_argument("--max-frames", type=int, default=800)
    ap.add_argument("--dims", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--fraction", type=float, default=0.8, help="share of utterances in the fold")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", nargs="+", default=["warm", "cold"])
    ap.add_argument("--sweep", action="store_true", help="also measure the alternative settings")
    ap.add_argument("--sweep-n", type=int, default=1000, help="utterances in the sweep (dims[0] only)")
    ap.add_argument("--sweep-chunk-mb", type=int, default=None,
                    help="chunk MB of the codec/thread/read-path variants (default: the production size)")
    ap.add_argument("--burn", type=int, default=0, help="CPU-burning processes for a final round under load")
    ap.add_argument("--dir", default=None, help="where to write the data (default: a temp dir)")
    args = ap.parse_args()

    from ser_pipeline.store import CHUNK_BYTES, COMPRESSOR, PIECE_BYTES, chunk_rows

    args.sweep_chunk_mb = args.sweep_chunk_mb or CHUNK_BYTES >> 20

    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, load avg {'/'.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{thread_settings()}")
    print(f"# production settings: CHUNK_BYTES={CHUNK_BYTES >> 20} MB, COMPRESSOR={COMPRESSOR}, "
          f"PIECE_BYTES={PIECE_BYTES >> 20} MB; "
          f"fold = {args.fraction:.0%} of the utterances; {args.repeats} repeats, contenders interleaved")
    base = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.dir))
    try:
        rng = np.random.default_rng(1)

        def selections(n):
            k = int(round(args.fraction * n))
            first = (n - k) // 2
            return {"contiguous": np.arange(first, first + k), "scattered": rng.permutation(n)[:k]}

        def sizes(offsets, sels, dim):
            return {s: float((offsets[r + 1] - offsets[r]).sum()) * dim * 4 / 1e9 for s, r in sels.items()}

        if args.sweep:
            dim = args.dims[0]
            ids, offsets, utt = make_data(0, args.sweep_n, args.min_frames, args.max_frames, dim)
            sels = selections(len(ids))
            gb = sizes(offsets, sels, dim)
            print(f"\n# sweep: {len(ids)} utterances x {args.min_frames}-{args.max_frames} frames x {dim} float32 "
                  f"= {offsets[-1] * dim * 4 / 1e9:.2f} GB; fold GB: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in gb.items()))
            h5 = base / "sweep.h5"
            write_h5(h5, offsets, utt, dim)
            variants = []
            mb = args.sweep_chunk_mb
            for c in (1, 2, 4, 8, 16, 64):
                variants.append((f"store {c}MB chunks none", dict(chunk_bytes=c << 20), {}))
            variants.append((f"store {mb}MB none, verify whole chunks", dict(chunk_bytes=mb << 20),
                             {"piece_bytes": 1 << 40}))
            from ser_pipeline.store import READ_THREADS

            for th in [t for t in (1, 2, 4) if t != READ_THREADS]:
                variants.append((f"store {mb}MB none, {th} read thread(s)", dict(chunk_bytes=mb << 20),
                                 {"threads": th}))
            for comp in ("lz4", "zstd-1", "zstd-3"):
                variants.append((f"store {mb}MB chunks {comp}", dict(chunk_bytes=mb << 20, compressor=comp), {}))
            variants.append((f"zarr slicing of {mb}MB none store", dict(chunk_bytes=mb << 20), {"zarr": True}))
            variants.append(("zarr slicing, sharded 64MB/1MB", None, {"sharded": True}))
            for name, wkw, rkw in variants:
                p = base / "variant.zarr"
                t0 = time.perf_counter()
                if wkw is None:
                    write_zarr_sharded(p, offsets, utt, dim, 64 << 20, 1 << 20)
                else:
                    write_prod(p, ids, utt, dim, **wkw)
                wt = time.perf_counter() - t0
                disk = sum(os.path.getsize(f) for f in files_of([p])) / 1e9
                if rkw.get("sharded"):
                    reader = zarr_slicing_reader(p, offsets, array=None)
                elif rkw.get("zarr"):
                    reader = zarr_slicing_reader(p, offsets)
                else:
                    reader = store_reader(p, ids, rkw.get("threads"), rkw.get("piece_bytes"))
                res = run_round({"h5py": h5_reader(h5, offsets), name: reader}, sels, args.modes, args.repeats,
                                files_of([h5, p]), gb)
                print_round(f"{name} (written in {wt:.1f} s, {disk:.2f} GB on disk"
                            + (f", {chunk_rows(dim, 'float32', wkw['chunk_bytes'])} rows/chunk)" if wkw else ")"),
                            res, gb)
                shutil.rmtree(p)
            h5.unlink()

        for dim in args.dims:
            ids, offsets, utt = make_data(0, args.n, args.min_frames, args.max_frames, dim)
            sels = selections(len(ids))
            gb = sizes(offsets, sels, dim)
            h5, st = base / f"d{dim}.h5", base / f"d{dim}.zarr"
            t0 = time.perf_counter()
            write_h5(h5, offsets, utt, dim)
            t_h5 = time.perf_counter() - t0
            t_st = write_prod(st, ids, utt, dim)
            print(f"\n# {len(ids)} utterances x {args.min_frames}-{args.max_frames} frames x {dim} float32 = "
                  f"{offsets[-1] * dim * 4 / 1e9:.2f} GB (store written in {t_st:.1f} s, h5py in {t_h5:.1f} s, "
                  f"both including generating the data); fold GB: " + ", ".join(f"{k} {v:.2f}" for k, v in gb.items()))
            print(f"# {verification_cost(st)}")
            contenders = {"h5py": h5_reader(h5, offsets), "store (production, verified)": store_reader(st, ids)}
            res = run_round(contenders, sels, args.modes, args.repeats, files_of([h5, st]), gb)
            print_round(f"production store vs h5py, D={dim}", res, gb)
            if args.burn and dim == args.dims[-1]:
                procs = [mp.Process(target=burn, daemon=True) for _ in range(args.burn)]
                for p in procs:
                    p.start()
                try:
                    from ser_pipeline.store import READ_THREADS

                    contenders.update({f"store, {t} read thread(s)": store_reader(st, ids, t)
                                       for t in (1, 2, 4) if t != READ_THREADS})
                    res = run_round(contenders, sels, ["warm"], args.repeats, files_of([h5, st]), gb)
                    print_round(f"under load: {args.burn} CPU-burning processes, D={dim}, load avg "
                                f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}", res, gb)
                finally:
                    for p in procs:
                        p.terminate()
                        p.join()
            h5.unlink()
            shutil.rmtree(st)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

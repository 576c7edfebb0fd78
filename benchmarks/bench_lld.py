"""LLD speed: our batched backend vs pyAudioAnalysis itself, side by side in one run.

    .venv/bin/python benchmarks/bench_lld.py [--utterances 200] [--repeats 3] [--seed 0]

Audio: espeak-ng speech (four sentences with their pauses, resampled to 16 kHz, tiled), cut
into --utterances utterances of seeded random lengths (1-8 s) and offsets, so that the set
has speech, pauses and digital silence like a corpus of short turns.

Contenders, on the same utterances:
  pyAudioAnalysis  ShortTermFeatures.feature_extraction per utterance, as the reference
                   backend runs it, with every BLAS/OpenMP pool at 1 thread;
  ours, 1 thread   ``set_threads(1)`` (what ``extract --threads 1`` does), then the
                   extractor on the batches the feature runner makes (length-sorted,
                   <= 16 utterances, <= 60 s padded);
  ours, 2 threads  the same after ``set_threads(2)`` (the extract rule's ``threads: 2``).
The extractor runs a batch on 1 or on all threads, whichever it has measured to be faster
(features/lld.py, _WorkerChoice); the share of batches on each is printed. Each repeat runs
pyAudioAnalysis once and each of ours --inner times, alternating, with the order rotated
between repeats; min and median per contender are printed with the ratios,
then the largest deviation of each feature from pyAudioAnalysis as a fraction of that
feature's range over all frames (and over voiced frames: energy above 1e-3 of the maximum).
Then 1 vs 2 threads again while --burners processes spin on the CPU, as on a shared node.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SR = 16000
TEXT = [
    "I cannot believe you did that again. Please, just leave me alone for a while.",
    "What a wonderful surprise! I never expected to see all of you here tonight.",
    "The meeting has been moved to Thursday afternoon, in the small room on the second floor.",
    "Why would anyone do such a thing? It makes no sense to me at all.",
]


def espeak_speech() -> np.ndarray:
    from scipy.signal import resample_poly
    import soundfile as sf

    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed to synthesise the benchmark speech (apt-get install espeak-ng)")
    parts = []
    with tempfile.TemporaryDirectory() as d:
        for i, text in enumerate(TEXT):
            wav = Path(d) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
            x, sr = sf.read(str(wav), dtype="float64")
            parts.append(resample_poly(x, 16000 // 50, sr // 50))  # 22050 -> 16000 Hz
    return np.concatenate(parts).astype(np.float32)


def utterances(n: int, seed: int, lo: float = 1.0, hi: float = 8.0) -> list[np.ndarray]:
    speech = espeak_speech()
    speech = np.tile(speech, int(np.ceil(2 * hi * SR / len(speech))) + 1)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.uniform(lo, hi) * SR)
        start = int(rng.integers(0, len(speech) - length))
        out.append(speech[start:start + length].copy())
    return out


def load() -> str:
    return "load average " + "/".join(f"{x:.2f}" for x in os.getloadavg())


def stats(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def settings_line(info: dict) -> str:
    libs = ", ".join(f"{lib['internal_api']}={lib['num_threads']}" for lib in info.get("libraries", []))
    return (f"torch intra-op {info['torch_intra_op']}, inter-op {info['torch_inter_op']}, "
            f"OMP_WAIT_POLICY {info.get('omp_wait_policy')}; {libs}")


def deviations(ours: list, ref: list) -> tuple[np.ndarray, np.ndarray]:
    """Per feature: max |ours - ref| / (max - min of ref), over all frames and voiced frames."""
    o = np.concatenate(ours).astype(np.float64)
    r = np.concatenate(ref)
    if o.shape != r.shape:
        raise SystemExit(f"frame counts differ: ours {o.shape}, pyAudioAnalysis {r.shape}")
    span = r.max(axis=0) - r.min(axis=0)
    span[span == 0] = 1.0
    err = np.abs(o - r) / span
    voiced = np.concatenate([x[:, 1] > 1e-3 * x[:, 1].max() for x in ref])
    return err.max(axis=0), err[voiced].max(axis=0)


def workers_line(used: dict) -> str:
    total = sum(used.values()) or 1
    return ", ".join(f"{100 * k / total:.0f} % of batches on {w} worker(s)" for w, k in sorted(used.items()))


def burner() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--utterances", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="pyAudioAnalysis runs (ours run --inner times each)")
    p.add_argument("--inner", type=int, default=5)
    p.add_argument("--burners", type=int, default=1, help="CPU-spinning processes for the loaded run (0: skip)")
    p.add_argument("--load-repeats", type=int, default=9)
    args = p.parse_args()

    # pyAudioAnalysis (numpy/scipy) single-threaded: these are read when the libraries load.
    # OMP_WAIT_POLICY as the extract CLI sets it (set_threads runs before torch loads there).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from threadpoolctl import threadpool_limits
    with warnings.catch_warnings():  # its scipy.fftpack import warns; not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyAudioAnalysis import ShortTermFeatures

    from ser_pipeline.device import set_threads, thread_settings
    from ser_pipeline.features.base import get_extractor
    from ser_pipeline.features.lld import FEATURE_NAMES
    from ser_pipeline.features.runner import length_batches

    utts = utterances(args.utterances, args.seed)
    seconds = np.array([len(u) / SR for u in utts])
    runner_order = length_batches(seconds, 60.0, 16)
    batches = [[utts[i] for i in b] for b in runner_order]
    position = np.argsort(np.concatenate(runner_order))  # runner order -> utterance order
    ex = get_extractor("lld", {})

    def reference():  # -> (outputs, seconds)
        with threadpool_limits(limits=1):
            t0 = time.perf_counter()
            out = [ShortTermFeatures.feature_extraction(x.astype(np.float64) * 32768.0, SR, 800, 400,
                                                        deltas=False)[0].T for x in utts]
            return out, time.perf_counter() - t0

    def ours(threads: int):
        def run():  # -> (outputs, seconds); the thread set-up is not timed
            set_threads(threads)
            ex._workers.used.clear()
            t0 = time.perf_counter()
            out = [f for b in batches for f in ex.extract_batch(b, SR)]
            seconds_taken = time.perf_counter() - t0
            for w, k in ex._workers.used.items():
                used[threads][w] = used[threads].get(w, 0) + k
            return [out[i] for i in position], seconds_taken
        return run

    print(f"{datetime.datetime.now().isoformat(timespec='seconds')}; python {platform.python_version()}, "
          f"torch {torch.__version__}, numpy {np.__version__}; {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}); {load()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print(f"audio: {len(utts)} utterances of {seconds.min():.1f}-{seconds.max():.1f} s (seed {args.seed}), "
          f"{seconds.sum():.0f} s in all, {len(batches)} runner batches")
    used: dict[int, dict[int, int]] = {1: {}, 2: {}}  # threads -> workers -> batches
    contenders = {"pyAudioAnalysis": reference, "ours, 1 thread": ours(1), "ours, 2 threads": ours(2)}
    for name in ("ours, 1 thread", "ours, 2 threads"):  # warm-up: tables, thread pools
        contenders[name]()
    used[1].clear()
    used[2].clear()
    settings = {}
    with threadpool_limits(limits=1):
        settings["pyAudioAnalysis"] = thread_settings()
    for name, n in (("ours, 1 thread", 1), ("ours, 2 threads", 2)):
        set_threads(n)
        settings[name] = thread_settings()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    outputs = {}
    order = list(contenders)
    for r in range(args.repeats):
        for name in order[r % 3:] + order[:r % 3]:
            for _ in range(1 if name == "pyAudioAnalysis" else args.inner):
                outputs[name], seconds_taken = contenders[name]()
                times[name].append(seconds_taken)
    frames = sum(len(f) for f in outputs["pyAudioAnalysis"])
    print(f"{frames} frames; pyAudioAnalysis {args.repeats} runs, ours {args.repeats * args.inner} runs each, "
          f"interleaved; {load()}")
    print(f"{'contender':<18}{'min s':>9}{'median s':>10}{'us/frame':>10}  threads in effect")
    for name, ts in times.items():
        lo, med = stats(ts)
        print(f"{name:<18}{lo:>9.3f}{med:>10.3f}{1e6 * lo / frames:>10.2f}  {settings_line(settings[name])}")
    ref_min, ref_med = stats(times["pyAudioAnalysis"])
    for name in ("ours, 1 thread", "ours, 2 threads"):
        lo, med = stats(times[name])
        print(f"speed-up {name:<16} vs pyAudioAnalysis: {ref_min / lo:6.1f}x (min/min), "
              f"{ref_med / med:6.1f}x (median/median)")
    (a_min, a_med), (b_min, b_med) = stats(times["ours, 1 thread"]), stats(times["ours, 2 threads"])
    print(f"2 threads vs 1, no extra load: time ratio 2t/1t {b_min / a_min:.2f} (min), {b_med / a_med:.2f} (median); "
          f"the 2-thread runs put {workers_line(used[2])}")

    diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs["ours, 2 threads"], outputs["ours, 1 thread"]))
    print(f"2-thread output vs 1-thread output: max |difference| {diff:.1e}")
    err_all, err_voiced = deviations(outputs["ours, 1 thread"], outputs["pyAudioAnalysis"])
    print("max |ours - pyAudioAnalysis| / feature range (max - min over all frames): all frames, voiced frames")
    for i in range(0, len(FEATURE_NAMES), 3):
        print("  " + "  ".join(f"{FEATURE_NAMES[j]:<18}{err_all[j]:8.1e}{err_voiced[j]:8.1e}"
                               for j in range(i, min(i + 3, len(FEATURE_NAMES)))))
    print(f"worst feature: {FEATURE_NAMES[int(err_all.argmax())]} {err_all.max():.1e} (all frames), "
          f"{FEATURE_NAMES[int(err_voiced.argmax())]} {err_voiced.max():.1e} (voiced)")

    if args.burners > 0:
        used[2].clear()
        procs = [burner() for _ in range(args.burners)]
        try:
            time.sleep(0.5)
            loaded = {1: [], 2: []}
            for r in range(args.load_repeats):
                for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                    loaded[n].append(ours(n)()[1])
            note = load()
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        (a_min, a_med), (b_min, b_med) = stats(loaded[1]), stats(loaded[2])
        print(f"with {args.burners} CPU-spinning process(es), {args.load_repeats} runs each, interleaved; {note}")
        print(f"  ours, 1 thread  min {a_min:.3f} s, median {a_med:.3f} s")
        print(f"  ours, 2 threads min {b_min:.3f} s, median {b_med:.3f} s")
        print(f"  2 threads vs 1 under load: time ratio 2t/1t {b_min / a_min:.2f} (min), {b_med / a_med:.2f} (median); "
              f"the 2-thread runs put {workers_line(used[2])}")
    print(f"done; {load()}")


if __name__ == "__main__":
    main()

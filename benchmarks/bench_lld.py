"""LLD speed: our batched torch backend vs pyAudioAnalysis itself, on the same audio, in one run.

    .venv/bin/python benchmarks/bench_lld.py [--seconds 60] [--threads 1] [--repeats 5] [--device cpu]

The audio is espeak-ng speech (several sentences, tiled to --seconds), resampled to 16 kHz.
Both sides get the same utterances: once as one long signal and once as 3 s utterances (the
pipeline's case: the torch backend gets them as one batch, pyAudioAnalysis one by one, as
its reference backend runs them). Each timing is the best of --repeats runs, because a
shared machine adds noise that only ever makes a run slower. Torch runs with --threads
intra-op threads (1 by default, since pyAudioAnalysis is single-threaded numpy). The error
columns are the largest per-feature error relative to the feature's range, on all frames
and on voiced frames, so the speed-up is reported next to how well the output matches.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 16000
TEXT = [
    "I cannot believe you did that again. Please, just leave me alone for a while.",
    "What a wonderful surprise! I never expected to see all of you here tonight.",
    "The meeting has been moved to Thursday afternoon, in the small room on the second floor.",
    "Why would anyone do such a thing? It makes no sense to me at all.",
]


def espeak_speech(seconds: float) -> np.ndarray:
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
    speech = np.concatenate(parts)
    reps = int(np.ceil(seconds * SR / len(speech)))
    return np.tile(speech, reps)[: int(seconds * SR)].astype(np.float32)


def best_of(fn, repeats: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def parity(ours: list, ref: list) -> tuple[float, float]:
    """Largest per-feature error relative to the feature's range: all frames, voiced frames."""
    worst_all = worst_voiced = 0.0
    for o, r in zip(ours, ref):
        scale = np.abs(r).max(axis=0) + 1e-30
        err = np.abs(o.astype(np.float64) - r) / scale
        voiced = r[:, 1] > 1e-3 * r[:, 1].max()
        worst_all = max(worst_all, float(err.max()))
        worst_voiced = max(worst_voiced, float(err[voiced].max()) if voiced.any() else 0.0)
    return worst_all, worst_voiced


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--utterance-seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    import warnings

    import torch
    with warnings.catch_warnings():  # its scipy.fftpack import warns; not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyAudioAnalysis import ShortTermFeatures

    from ser_pipeline.features.base import get_extractor

    torch.set_num_threads(args.threads)
    audio = espeak_speech(args.seconds)
    n = int(args.utterance_seconds * SR)
    utts = [audio[i:i + n] for i in range(0, len(audio), n) if len(audio[i:i + n]) >= 800]

    def reference(batch):
        return [ShortTermFeatures.feature_extraction(x.astype(np.float64) * 32768.0, SR, 800, 400,
                                                     deltas=False)[0].T for x in batch]

    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch thread(s), device {args.device}, "
          f"CPU: {platform.processor() or platform.machine()}")
    print(f"audio: {len(audio) / SR:.1f} s of espeak-ng speech; best of {args.repeats} runs")
    print(f"{'case':<48}{'pyAudioAnalysis':>16}{'ours':>9}{'speed-up':>10}"
          f"{'err all':>10}{'err voiced':>11}")
    for label, batch in ((f"one {len(audio) / SR:.0f} s signal", [audio]),
                         (f"{len(utts)} x {args.utterance_seconds:g} s utterances, one batch", utts)):
        ref_t, ref = best_of(lambda: reference(batch), max(1, args.repeats // 2))
        for precision in ("float64", "float32"):
            ex = get_extractor("lld", {"precision": precision}, args.device)
            ex.extract_batch(batch[:1], SR)  # warm-up: builds the filterbank tables
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            ours_t, ours = best_of(lambda: ex.extract_batch(batch, SR), args.repeats)
            frames = sum(o.shape[0] for o in ours)
            name = f"{label}, {precision}"
            err_all, err_voiced = parity(ours, ref)
            print(f"{name:<48}{ref_t:>15.3f}s{ours_t:>8.3f}s{ref_t / ours_t:>9.1f}x"
                  f"{err_all:>10.1e}{err_voiced:>11.1e}")
        print(f"{'':<48}({frames} frames)")


if __name__ == "__main__":
    main()

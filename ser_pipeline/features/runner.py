"""Drives one extractor over one corpus manifest into one store.

Reading, cropping, speed perturbation and batching are done here once for every
extractor. Utterances are sorted by length and cut into batches of bounded padded
duration, so padding waste is small and memory per batch is bounded whatever the corpus
size; frames stream into the store as they are produced.

Long extractions are resumable: the store writer records a checkpoint (at most every
``checkpoint_seconds``, always at a batch boundary) in its partial store, keyed by everything the
content depends on: the store attributes (extractor, config, model checksum, library versions,
device), the batch plan, and a digest of the manifest rows with each audio file's size and
modification time. A rerun with the same key skips the batches already stored; the finished
store is identical (same content_digest) to an uninterrupted run's because the batch plan, and
so every batch's input, is the same.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
from tqdm import tqdm

from ser_pipeline import SAMPLE_RATE
from ser_pipeline.audio import read_audio
from ser_pipeline.features.base import get_extractor
from ser_pipeline.manifest import read_manifest
from ser_pipeline.store import library_versions, write_store

RUNNER_KEYS = {"extractor", "params", "max_seconds", "speed", "batch_seconds", "batch_items", "dtype"}


def length_batches(durations: np.ndarray, max_padded_seconds: float, max_items: int) -> list[np.ndarray]:
    """Indices sorted by duration, grouped so each batch's padded length x size stays bounded."""
    order = np.argsort(durations, kind="stable")
    batches, cur = [], []
    for i in order:
        longest = durations[i]  # sorted ascending, so the newest item is the longest
        if cur and (len(cur) + 1 > max_items or (len(cur) + 1) * longest > max_padded_seconds):
            batches.append(np.array(cur))
            cur = []
        cur.append(i)
    if cur:
        batches.append(np.array(cur))
    return batches


def load_waveform(row, max_seconds: float | None, speed: float | None) -> np.ndarray:
    start = None if np.isnan(row.start) else float(row.start)
    end = None if np.isnan(row.end) else float(row.end)
    x = read_audio(row.audio_path, start, end)
    if speed and speed != 1.0:
        from ser_pipeline.features.perturb import speed_perturb
        x = speed_perturb(x, speed, SAMPLE_RATE)
    if max_seconds:
        x = x[: int(max_seconds * SAMPLE_RATE)]
    return x


def manifest_digest(df, with_audio: bool) -> str:
    """sha256 of the manifest columns extraction reads, plus each audio file's size and mtime.

    The audio stat catches a file regenerated under the same name between an interrupted run
    and its resumption (a copied corpus gets new mtimes and simply starts afresh).
    """
    h = hashlib.sha256()
    cols = [c for c in ("utt_id", "audio_path", "start", "end", "duration", "text") if c in df.columns]
    for row in df[cols].itertuples(index=False):
        h.update(json.dumps([None if isinstance(v, float) and np.isnan(v) else v for v in row],
                            default=str).encode())
        if with_audio:
            try:
                st = os.stat(row.audio_path)
                h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
            except OSError:
                h.update(b"|missing")
        h.update(b"\n")
    return h.hexdigest()


def extract_corpus(manifest_path, out_path, spec: dict, device: str = "cpu", *,
                   checkpoint_seconds: float | None = None) -> dict:
    """Extract ``spec`` (a features: entry of config.yaml) for every utterance of the manifest.

    Resumes an interrupted extraction of the same output with the same inputs (see module doc).
    """
    from ser_pipeline.errors import ConfigError

    unknown = set(spec) - RUNNER_KEYS
    if unknown:
        raise ConfigError(f"features entry has unknown keys {sorted(unknown)}; allowed: {sorted(RUNNER_KEYS)}")
    df = read_manifest(manifest_path)
    if df.empty:
        raise ConfigError(f"{manifest_path}: manifest has no utterances")
    extractor = get_extractor(spec["extractor"], spec.get("params") or {}, device)
    text = extractor.input_kind == "text"
    max_seconds, speed = spec.get("max_seconds"), spec.get("speed")
    durations = df["duration"].to_numpy(dtype=float)
    if text:
        durations = df["text"].str.len().to_numpy(dtype=float)
    else:
        if max_seconds:
            durations = np.minimum(durations, max_seconds)
        if speed:
            durations = durations / speed
    batches = length_batches(durations, spec.get("batch_seconds", 60.0 if not text else 1e9),
                             spec.get("batch_items", 16))
    attrs = {
        "extractor": spec["extractor"],
        "config": spec,
        "frame_rate": extractor.frame_rate,
        "device": device,
        "info": extractor.info(),
        "libraries": library_versions("torch", "torchaudio", "transformers", "pyAudioAnalysis", "opensmile"),
        "manifest": str(manifest_path),
    }
    t0 = time.time()
    audio_seconds = 0.0
    rows = list(df.itertuples(index=False))
    resume_key = json.dumps({"attrs": attrs, "manifest": manifest_digest(df, not text),
                             "batches": [[rows[i].utt_id for i in idx] for idx in batches]},
                            sort_keys=True, default=str)
    with write_store(out_path, extractor.dim, attrs, dtype=spec.get("dtype", "float32"),
                     with_tokens=text, resume_key=resume_key, checkpoint_seconds=checkpoint_seconds) as store:
        skip = store.resumed_from
        bar = tqdm(total=len(rows), initial=sum(len(b) for b in batches[:skip]), unit="utt",
                   desc=f"{spec['extractor']} -> {out_path}", mininterval=2.0)
        for k, idx in enumerate(batches[skip:], start=skip):
            batch_rows = [rows[i] for i in idx]
            if text:
                outs = extractor.extract_batch([r.text for r in batch_rows])
                for r, (frames, tokens) in zip(batch_rows, outs):
                    store.add(r.utt_id, frames, tokens)
            else:
                waves = [load_waveform(r, max_seconds, speed) for r in batch_rows]
                audio_seconds += sum(len(w) for w in waves) / SAMPLE_RATE
                for r, frames in zip(batch_rows, extractor.extract_batch(waves, SAMPLE_RATE)):
                    store.add(r.utt_id, frames)
            bar.update(len(idx))
            store.end_batch(k + 1)
        bar.close()
    wall = time.time() - t0
    return {"utterances": len(rows), "batches": len(batches), "resumed_after_batches": skip,
            "audio_seconds": audio_seconds, "wall_seconds": wall,
            "x_realtime": audio_seconds / wall if wall > 0 else None}

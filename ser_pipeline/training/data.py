"""Turning cached features into padded, masked batches.

Features are loaded once per job with one bulk read per store, normalised with
statistics of the training part only, and batched by similar length so that padding
(which the models mask anyway) costs little compute.
"""
from __future__ import annotations

import numpy as np
import torch

from ser_pipeline.store import FeatureStore


class Streams:
    """Per-utterance frame arrays of each input stream (e.g. audio, text), aligned by utt id."""

    def __init__(self, stores: dict[str, str], ids: list[str]):
        self.ids = list(ids)
        self.data: dict[str, list[np.ndarray]] = {}
        self.meta: dict[str, dict] = {}
        for stream, path in stores.items():
            st = FeatureStore(path)
            self.data[stream] = st.load(self.ids)
            self.meta[stream] = {"store": str(path), "extractor": st.attrs.get("extractor"),
                                 "frame_rate": st.attrs.get("frame_rate"), "info": st.attrs.get("info", {})}

    def subset(self, idx) -> "Streams":
        out = object.__new__(Streams)
        out.ids = [self.ids[i] for i in idx]
        out.data = {k: [v[i] for i in idx] for k, v in self.data.items()}
        out.meta = self.meta
        return out


def zscore_stats(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean/std over every frame (streaming sums: no giant concatenation)."""
    n = sum(len(a) for a in arrays)
    s = sum(a.sum(axis=0, dtype=np.float64) for a in arrays)
    ss = sum((a.astype(np.float64) ** 2).sum(axis=0) for a in arrays)
    mean = s / max(n, 1)
    std = np.sqrt(np.maximum(ss / max(n, 1) - mean ** 2, 0.0))
    return mean.astype(np.float32), np.where(std < 1e-6, 1.0, std).astype(np.float32)


def apply_zscore(arrays: list[np.ndarray], stats) -> list[np.ndarray]:
    mean, std = stats
    return [(a - mean) / std for a in arrays]


def pad_batch(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [max(1, len(a)) for a in arrays]
    dim = arrays[0].shape[1]
    x = np.zeros((len(arrays), max(lengths), dim), dtype=np.float32)
    mask = np.zeros((len(arrays), max(lengths)), dtype=bool)
    for i, a in enumerate(arrays):
        x[i, : len(a)] = a
        mask[i, : max(1, len(a))] = True  # an empty utterance keeps one zero frame, so pooling is defined
    return torch.from_numpy(x), torch.from_numpy(mask)


def length_buckets(lengths: list[int], batch_size: int, rng: np.random.Generator | None) -> list[list[int]]:
    """Batches of similar length; with an rng, lengths are jittered and batch order shuffled."""
    lengths = np.asarray(lengths, dtype=float)
    if rng is not None:
        lengths = lengths * rng.uniform(0.9, 1.1, size=len(lengths))
    order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def make_batch(streams: dict[str, list[np.ndarray]], idx: list[int], device: str) -> dict:
    batch = {}
    for name, arrays in streams.items():
        x, m = pad_batch([arrays[i] for i in idx])
        batch[name] = x.to(device)
        batch[f"{name}_mask"] = m.to(device)
    return batch


def speaker_zscore(arrays: list[np.ndarray], speakers: list[str]) -> list[np.ndarray]:
    """Each utterance normalised with the statistics of its own speaker's frames.

    The -NORM systems of Triantafyllopoulos et al. (after Vlasenko et al.) normalise every
    speaker, test speakers included, with that speaker's own mean and standard deviation:
    the statistics come from unlabelled audio of the speaker, never from labels.
    """
    stats = speaker_stats(arrays, speakers)
    return [(a - stats[s][0]) / stats[s][1] for a, s in zip(arrays, speakers)]


def speaker_stats(arrays: list[np.ndarray], speakers: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    by_speaker: dict[str, list[np.ndarray]] = {}
    for a, s in zip(arrays, speakers):
        by_speaker.setdefault(s, []).append(a)
    return {s: zscore_stats(v) for s, v in by_speaker.items()}


def middle_cycle(a: np.ndarray, frames: int) -> np.ndarray:
    """The middle ``frames`` frames; a shorter utterance is repeated cyclically to that length.

    Li et al. keep the middle 14 s of longer utterances ("important dynamic emotional
    information is usually located in the middle part") and cycle-repeat shorter ones.
    """
    n = len(a)
    if n == 0:
        raise ValueError("cannot cycle-repeat an utterance with no frames")
    if n >= frames:
        start = (n - frames) // 2
        return a[start:start + frames]
    reps = -(-frames // n)
    return np.concatenate([a] * reps, axis=0)[:frames]


def random_crop(a: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``frames`` frames; shorter utterances are kept whole (masked)."""
    if len(a) <= frames:
        return a
    start = int(rng.integers(0, len(a) - frames + 1))
    return a[start:start + frames]


def first_of_label(ids: list[str], speakers: list[str], raw_labels: list[str], label: str,
                   order: dict[str, int], skip: int = 0) -> dict[str, str]:
    """{speaker: the (skip+1)-th utterance with ``label`` in corpus order}; ids of one part."""
    by_speaker: dict[str, list[str]] = {}
    for u, s, lab in zip(ids, speakers, raw_labels):
        if lab == label:
            by_speaker.setdefault(s, []).append(u)
    return {s: sorted(us, key=order.__getitem__)[skip] for s, us in by_speaker.items() if len(us) > skip}

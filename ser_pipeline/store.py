"""Feature cache: one Zarr store per (corpus, feature config).

Layout (all arrays 1 chunk-row aligned, appended as extraction streams):
  frames   float32/float16 [N_total_frames, D]  every utterance's frames, concatenated
  offsets  int64 [N_utt + 1]                     utterance i is frames[offsets[i]:offsets[i+1]]
  utt_ids  str [N_utt]
  tokens   str [N_total_frames]                  only for text features (one token per row)
attributes: extractor, config, frame_rate, dim, info (model checksum, library versions),
n_utterances, complete=True (written last).

Concatenation plus an offsets index keeps the store at a handful of chunk files per array
instead of one group per utterance, and lets a fold be loaded with one bulk read.
The store is built under a temporary name and renamed when complete, so an interrupted
extraction never leaves a store that looks finished.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from ser_pipeline.atomic import atomic_path
from ser_pipeline.errors import SerError

ROW_CHUNK = 16384


class StoreWriter:
    """Streams utterances into a new store; peak memory is one flush buffer, not the corpus."""

    def __init__(self, tmp_path: Path, dim: int, dtype: str = "float32", with_tokens: bool = False,
                 flush_bytes: int = 64 << 20):
        self.group = zarr.open_group(str(tmp_path), mode="w")
        rows = max(256, min(ROW_CHUNK, (4 << 20) // max(1, dim * np.dtype(dtype).itemsize)))
        self.frames = self.group.create_array("frames", shape=(0, dim), chunks=(rows, dim), dtype=dtype)
        self.tokens = (self.group.create_array("tokens", shape=(0,), chunks=(rows,), dtype=str)
                       if with_tokens else None)
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self.flush_bytes = flush_bytes
        self._buf: list[np.ndarray] = []
        self._tok: list[str] = []
        self._buf_bytes = 0
        self.ids: list[str] = []
        self.lengths: list[int] = []

    def add(self, utt_id: str, frames: np.ndarray, tokens: list[str] | None = None) -> None:
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.dim:
            raise SerError(f"utterance {utt_id}: extractor returned shape {frames.shape}, expected (T, {self.dim})")
        if not np.all(np.isfinite(frames)):
            raise SerError(f"utterance {utt_id}: extractor returned NaN/inf values")
        if self.tokens is not None:
            if tokens is None or len(tokens) != len(frames):
                raise SerError(f"utterance {utt_id}: {len(frames)} frames but "
                               f"{0 if tokens is None else len(tokens)} tokens")
            self._tok.extend(tokens)
        self._buf.append(frames.astype(self.dtype, copy=False))
        self._buf_bytes += frames.nbytes
        self.ids.append(utt_id)
        self.lengths.append(len(frames))
        if self._buf_bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self.frames.append(np.concatenate(self._buf, axis=0))
            self._buf, self._buf_bytes = [], 0
        if self.tokens is not None and self._tok:
            self.tokens.append(np.array(self._tok, dtype=object))
            self._tok = []

    def close(self, attrs: dict) -> None:
        self.flush()
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        self.group.create_array("offsets", data=offsets, chunks=(max(1, len(offsets)),))
        ids = np.array(self.ids, dtype=object)
        self.group.create_array("utt_ids", shape=ids.shape, dtype=str, chunks=(max(1, len(ids)),))
        if len(ids):
            self.group["utt_ids"][:] = ids
        self.group.attrs.update({**attrs, "n_utterances": len(self.ids), "dim": self.dim,
                                 "n_frames": int(offsets[-1]), "complete": True})


class write_store:
    """Context manager: ``with write_store(path, dim) as w: w.add(...)``; renamed on success."""

    def __init__(self, path, dim: int, attrs: dict, dtype: str = "float32", with_tokens: bool = False):
        self.path, self.dim, self.attrs, self.dtype, self.with_tokens = Path(path), dim, attrs, dtype, with_tokens

    def __enter__(self) -> StoreWriter:
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self.writer = StoreWriter(tmp, self.dim, self.dtype, self.with_tokens)
        return self.writer

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.writer.close(self.attrs)
            except BaseException as e:
                self._ctx.__exit__(type(e), e, e.__traceback__)
                raise
        return self._ctx.__exit__(exc_type, exc, tb)


class FeatureStore:
    """Read side. ``load(ids)`` does one bulk read of the frames and slices it in memory."""

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise SerError(f"{self.path}: not a feature store (no zarr.json); run the extract step first")
        self.group = zarr.open_group(str(self.path), mode="r")
        self.attrs = dict(self.group.attrs)
        if not self.attrs.get("complete"):
            raise SerError(f"{self.path}: store is incomplete (interrupted extraction?); delete it and rerun")
        self.offsets = self.group["offsets"][:]
        self.utt_ids = [str(u) for u in self.group["utt_ids"][:]]
        self.index = {u: i for i, u in enumerate(self.utt_ids)}

    @property
    def dim(self) -> int:
        return int(self.attrs["dim"])

    def __len__(self) -> int:
        return len(self.utt_ids)

    def _rows(self, ids):
        missing = [u for u in ids if u not in self.index]
        if missing:
            raise SerError(f"{self.path}: {len(missing)} utterances missing from the store, e.g. {missing[:3]}")
        return [self.index[u] for u in ids]

    def load(self, ids=None, dtype=np.float32) -> list[np.ndarray]:
        ids = self.utt_ids if ids is None else list(ids)
        rows = self._rows(ids)
        if not rows:
            return []
        lo = int(min(self.offsets[r] for r in rows))
        hi = int(max(self.offsets[r + 1] for r in rows))
        block = np.asarray(self.group["frames"][lo:hi], dtype=dtype)
        return [block[self.offsets[r] - lo:self.offsets[r + 1] - lo] for r in rows]

    def load_tokens(self, ids=None) -> list[list[str]]:
        if "tokens" not in self.group:
            raise SerError(f"{self.path}: this store has no tokens")
        ids = self.utt_ids if ids is None else list(ids)
        toks = self.group["tokens"][:]
        return [[str(t) for t in toks[self.offsets[r]:self.offsets[r + 1]]] for r in self._rows(ids)]


def is_complete(path) -> bool:
    try:
        return bool(zarr.open_group(str(path), mode="r").attrs.get("complete"))
    except Exception:
        return False


def library_versions(*names: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in ("numpy", "zarr", *names):
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out


__all__ = ["FeatureStore", "write_store", "is_complete", "library_versions"]

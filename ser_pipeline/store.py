"""Feature cache: one Zarr v3 group per (corpus, feature config), verified whenever it is read.

Layout (every array cut into chunks of whole rows):
  frames   float32/float16 [N_total_frames, D]  every utterance's frames, concatenated
  offsets  int64 [N_utt + 1]                     utterance i is frames[offsets[i]:offsets[i+1]]
  utt_ids  string [N_utt]
  tokens   string [N_total_frames]               only for text features (one token per row)
attributes: extractor, config, frame_rate, dim, dtype, info (model checksum), libraries,
n_utterances, n_frames, chunk_rows, store_format, checksums (crc32c of every chunk file of every
array), content_digest (sha256 over those checksums and each array's metadata), and
complete=True, written last.

Why chunk files are written and read here rather than through zarr's array API:
- zarr reads a missing chunk file as the fill value (zeros) and decodes overwritten bytes into
  whatever numbers they make. Checking a crc32c of the exact bytes of each chunk file, recorded
  when it was written, is the only way to notice; computing it while writing costs nothing extra,
  and at read time it is checked on the same bytes that are read, for the chunks a load touches.
- Reading uncompressed chunk files straight into the caller's buffer, a few threads at a time,
  keeps a fold load close to an h5py read of the same rows (benchmarks/bench_store.py measured
  the chunk size, codecs, sharding and both read paths; see benchmarks/README.md). Float frames
  barely compress (random mantissas), so the default is no codec.
- The files are still a plain Zarr v3 group (default chunk keys, ``bytes`` codec), which zarr
  and other Zarr readers open as usual; only the checksums are our addition.

Writing streams: rows are buffered until one chunk is full, then that chunk file is written, so
memory is one chunk plus one utterance whatever the corpus size. The store is built under the
deterministic hidden sibling ``.<name>.partial`` and renamed onto ``<name>`` when complete, so an
interrupted extraction never leaves a store that looks finished. A resumable write
(``resume_key``) records, at each checkpoint, what it has written (ids, lengths, chunk checksums,
the batches done) in ``_partial.json`` inside the partial store; a later write of the same output
with the same key re-verifies those chunks and continues after the last checkpoint, anything else
starts afresh. A lock file beside the output keeps two writers apart; stale ``.<name>.tmp-*``
folders left by older versions are removed when a write starts.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ser_pipeline.errors import SerError, StoreError

STORE_FORMAT = 2
# crc32c (Castagnoli) of each chunk file's bytes, by google-crc32c (a dependency of zarr 3, whose own
# checksum codec uses it): ~25 GB/s with the SSE4.2/ARMv8 instruction, against ~4 GB/s for zlib.crc32.
CHECKSUM = "crc32c"
# Production settings, picked by benchmarks/bench_store.py --sweep on a loaded 2-core machine (ratios
# are store/h5py read times of the same rows, min of 5; see benchmarks/README.md):
# - chunk size: no size from 1 to 64 MB was consistently better (all 1.1-2.6x; 4-16 MB warm
#   1.4-1.9x, cold 1.2-2.2x). 8 MB keeps a 5 GB store at ~640 files (cluster file systems count
#   inodes) and the write buffer and the padding of the last chunk at 8 MB.
# - codec: none. lz4 measured 2.2-4.2x, zstd-1/3 3.5-8.2x, and saved 7-8% of the disk: float
#   features carry random mantissa bits and barely compress.
# - Zarr v3 sharding (zarr's own writer and reader): 2.7-8.6x. zarr's own slicing of our files,
#   unverified: 0.9-1.8x, no faster than the verified path in this noise.
CHUNK_BYTES = 8 << 20  # target bytes of one frames chunk (rows = CHUNK_BYTES // row bytes)
COMPRESSOR = None  # None | "lz4" | "zstd-<level>"


def _default_read_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


# Chunk files read + verified concurrently by FeatureStore.load: one per usable core, at most 4.
# Measured on 2 cores (benchmarks/bench_store.py): 4 threads overlapped more I/O on cold reads
# (cold store/h5py 1.1-1.7x against 1.3-2.1x with 2) but made warm reads slower (1.3-2.9x against
# 1.1-1.4x; threads sharing a core evicting each other's just-read piece from the cache before it is
# verified is the likely reason), so no more threads than cores.
READ_THREADS = _default_read_threads()
# A chunk is read and verified in pieces this big, each while it is still in the CPU cache; reading
# whole 8 MB chunks and verifying them afterwards measured 2.1-2.4x warm against 1.5-1.7x.
PIECE_BYTES = 1 << 20
CHECKPOINT_SECONDS = 30.0  # resumable writes record their progress at most this often
STATE_FILE = "_partial.json"
TAIL_DIR = "_partial_tail"  # the rows of the last, unfinished chunk at the last checkpoint


def partial_path(path) -> Path:
    """The hidden sibling a store is built in; deterministic, so a rerun can resume it."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def chunk_rows(dim: int, dtype, chunk_bytes: int = CHUNK_BYTES) -> int:
    return max(1, int(chunk_bytes) // max(1, dim * np.dtype(dtype).itemsize))


# --------------------------------------------------------------------------------------------
# codecs: what goes into each array's zarr.json, and how chunk bytes are made / undone


def _zarr_compressors(compressor: str | None, dtype) -> list:
    """zarr codec objects for ``compressor`` (written into the array metadata)."""
    import zarr.codecs as zc

    if compressor in (None, "none"):
        return []
    if compressor == "lz4":
        return [zc.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=np.dtype(dtype).itemsize)]
    if compressor.startswith("zstd-"):
        return [zc.ZstdCodec(level=int(compressor.split("-", 1)[1]))]
    raise SerError(f"unknown store compressor '{compressor}' (none, lz4, zstd-<level>)")


def _numcodec(meta_codec: dict):
    import numcodecs

    name = meta_codec["name"]
    if name == "zstd":
        return numcodecs.Zstd(level=int(meta_codec.get("configuration", {}).get("level", 0)))
    if name == "blosc":
        c = meta_codec.get("configuration", {})
        return numcodecs.Blosc(cname=c.get("cname", "lz4"), clevel=int(c.get("clevel", 5)),
                               shuffle=numcodecs.Blosc.SHUFFLE if c.get("shuffle") == "shuffle"
                               else numcodecs.Blosc.NOSHUFFLE)
    return None


def _encode_numeric(block: np.ndarray, compressor_codecs: list) -> bytes:
    raw = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<"))
    if not compressor_codecs:
        return raw.tobytes()
    return bytes(_numcodec(compressor_codecs[0].to_dict()).encode(raw))


def _encode_strings(items: list[str]) -> bytes:
    from numcodecs import VLenUTF8

    return bytes(VLenUTF8().encode(np.array(items, dtype=object)))


def _crc(buf) -> int:
    """crc32c of bytes, or of a numpy array's / memoryview's bytes (google_crc32c wants read-only)."""
    import google_crc32c

    if not isinstance(buf, bytes):
        buf = np.frombuffer(buf, dtype=np.uint8)
        buf.flags.writeable = False
    return google_crc32c.value(buf)


def _content_digest(arrays: dict) -> str:
    """sha256 over every array's metadata that decides its values and its chunk checksums."""
    doc = {"store_format": STORE_FORMAT, "checksum": CHECKSUM,
           "arrays": {name: arrays[name] for name in sorted(arrays)}}
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _array_summary(meta: dict, checksums: list[int]) -> dict:
    return {"shape": meta["shape"], "data_type": meta["data_type"],
            "chunk_shape": meta["chunk_grid"]["configuration"]["chunk_shape"],
            "codecs": meta["codecs"], "checksums": list(checksums)}


def _chunk_file(root: Path, name: str, ndim: int, i: int) -> Path:
    return root / name / "c" / str(i) / "0" if ndim == 2 else root / name / "c" / str(i)


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------------------------
# writing


class _CannotResume(Exception):
    pass


class StoreWriter:
    """Streams utterances into a store folder; peak memory is one chunk plus one utterance."""

    def __init__(self, root: Path, dim: int, dtype: str = "float32", with_tokens: bool = False,
                 chunk_bytes: int = CHUNK_BYTES, compressor: str | None = COMPRESSOR,
                 key: str | None = None, checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.root = Path(root)
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        self.with_tokens = with_tokens
        self.rows = chunk_rows(dim, self.dtype, chunk_bytes)
        self.compressor = compressor
        self._codecs = _zarr_compressors(compressor, self.dtype)
        self.key = key
        self.checkpoint_seconds = checkpoint_seconds
        self.ids: list[str] = []
        self._seen: set[str] = set()
        self.lengths: list[int] = []
        self.n_frames = 0  # rows added
        self.crcs: dict[str, list[int]] = {"frames": [], "tokens": []}  # full chunks on disk
        self._buf: list[np.ndarray] = []
        self._buf_rows = 0
        self._tok: list[str] = []
        self.batches_done = 0  # batches recorded by the last checkpoint
        self.resumed_from = 0  # batches a resumed write found done
        self._last_checkpoint = time.monotonic()

    # -- fresh / resumed start -------------------------------------------------------------
    def start_fresh(self) -> None:
        import zarr

        _remove(self.root)
        zarr.open_group(str(self.root), mode="w")

    def try_resume(self) -> None:
        """Continue a partial store written with the same key; raise _CannotResume otherwise."""
        state_file = self.root / STATE_FILE
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError) as e:
            raise _CannotResume(f"no readable progress record ({e.__class__.__name__})")
        if state.get("key") != self.key or state.get("rows") != self.rows:
            raise _CannotResume("it was written with a different config, manifest or library versions")
        n_full = len(state["crcs"]["frames"])
        names = ["frames"] + (["tokens"] if self.with_tokens else [])
        for name in names:
            if len(state["crcs"][name]) != n_full:
                raise _CannotResume(f"its progress record lists {len(state['crcs'][name])} {name} chunks")
            for i, want in enumerate(state["crcs"][name]):
                if _crc(self._file_bytes(name, i)) != want:
                    raise _CannotResume(f"{name} chunk {i} does not match its checksum")
        tail_rows = int(state["n_frames"]) - n_full * self.rows
        if not 0 <= tail_rows < self.rows or sum(state["lengths"]) != state["n_frames"]:
            raise _CannotResume("its progress record is inconsistent")
        if tail_rows:
            data = self._tail_bytes("frames")
            if _crc(data) != state["tail_crcs"]["frames"]:
                raise _CannotResume("its last partial chunk does not match its checksum")
            block = self._decode_frames(data)
            self._buf, self._buf_rows = [block[:tail_rows].copy()], tail_rows
            if self.with_tokens:
                data = self._tail_bytes("tokens")
                if _crc(data) != state["tail_crcs"]["tokens"]:
                    raise _CannotResume("its last partial tokens chunk does not match its checksum")
                from numcodecs import VLenUTF8

                self._tok = [str(t) for t in VLenUTF8().decode(data)[:tail_rows]]
        # Chunks written after the checkpoint (before the interruption) are stale: drop them.
        for name in names:
            cdir = self.root / name / "c"
            if cdir.exists():
                for p in cdir.iterdir():
                    if not p.name.isdigit() or int(p.name) >= n_full:
                        _remove(p)
        self.ids, self.lengths = list(state["ids"]), [int(n) for n in state["lengths"]]
        self._seen = set(self.ids)
        self.n_frames = int(state["n_frames"])
        self.crcs = {"frames": list(state["crcs"]["frames"]),
                     "tokens": list(state["crcs"]["tokens"]) if self.with_tokens else []}
        self.batches_done = self.resumed_from = int(state["batches_done"])

    def _file_bytes(self, name: str, i: int) -> bytes:
        try:
            return _chunk_file(self.root, name, 2 if name == "frames" else 1, i).read_bytes()
        except OSError as e:
            raise _CannotResume(f"{name} chunk {i} cannot be read ({e.__class__.__name__})")

    def _tail_bytes(self, name: str) -> bytes:
        try:
            return (self.root / TAIL_DIR / name).read_bytes()
        except OSError as e:
            raise _CannotResume(f"its last partial {name} chunk cannot be read ({e.__class__.__name__})")

    def _decode_frames(self, data: bytes) -> np.ndarray:
        if self._codecs:
            data = _numcodec(self._codecs[0].to_dict()).decode(data)
        return np.frombuffer(data, dtype=self.dtype.newbyteorder("<")).reshape(self.rows, self.dim)

    # -- streaming ---------------------------------------------------------------------------
    def add(self, utt_id: str, frames: np.ndarray, tokens: list[str] | None = None) -> None:
        frames = np.asarray(frames)
        utt_id = str(utt_id)
        if utt_id in self._seen:
            raise SerError(f"utterance {utt_id}: added twice (utterance ids must be unique)")
        if frames.ndim != 2 or frames.shape[1] != self.dim:
            raise SerError(f"utterance {utt_id}: extractor returned shape {frames.shape}, expected (T, {self.dim})")
        if not np.all(np.isfinite(frames)):
            raise SerError(f"utterance {utt_id}: extractor returned NaN/inf values")
        if self.with_tokens:
            if tokens is None or len(tokens) != len(frames):
                raise SerError(f"utterance {utt_id}: {len(frames)} frames but "
                               f"{0 if tokens is None else len(tokens)} tokens")
            self._tok.extend(str(t) for t in tokens)
        self._buf.append(frames.astype(self.dtype, copy=False))
        self._buf_rows += len(frames)
        self.ids.append(utt_id)
        self._seen.add(utt_id)
        self.lengths.append(len(frames))
        self.n_frames += len(frames)
        if self._buf_rows >= self.rows:
            self._write_full_chunks()

    def _write_full_chunks(self) -> None:
        block = np.concatenate(self._buf, axis=0) if len(self._buf) > 1 else self._buf[0]
        done = 0
        while len(block) - done >= self.rows:
            self._write_chunk(len(self.crcs["frames"]), block[done:done + self.rows],
                              self._tok[done:done + self.rows], final=True)
            done += self.rows
        self._buf = [block[done:].copy()] if done < len(block) else []
        self._buf_rows = len(block) - done
        self._tok = self._tok[done:]

    def _write_chunk(self, i: int | None, block: np.ndarray, toks: list[str], final: bool) -> dict:
        """Write chunk ``i`` (padded to full rows, as Zarr stores edge chunks); return its crcs.

        ``i=None`` writes the unfinished last chunk of a checkpoint beside the chunks, where later
        full chunks cannot overwrite it."""
        if len(block) < self.rows:
            pad = np.zeros((self.rows, self.dim), dtype=self.dtype)
            pad[:len(block)] = block
            block = pad
            toks = list(toks) + [""] * (self.rows - len(toks))
        data = _encode_numeric(block, self._codecs)
        where = {n: (self.root / TAIL_DIR / n if i is None else _chunk_file(self.root, n, nd, i))
                 for n, nd in (("frames", 2), ("tokens", 1))}
        _write_file(where["frames"], data)
        crcs = {"frames": _crc(data)}
        if self.with_tokens:
            tdata = _encode_strings(toks)
            _write_file(where["tokens"], tdata)
            crcs["tokens"] = _crc(tdata)
        if final:
            for k, v in crcs.items():
                self.crcs[k].append(v)
        return crcs

    def _tail(self) -> tuple[np.ndarray, list[str]]:
        block = (np.concatenate(self._buf, axis=0) if self._buf
                 else np.zeros((0, self.dim), dtype=self.dtype))
        return block, list(self._tok)

    def end_batch(self, batches_done: int, force: bool = False) -> bool:
        """Mark ``batches_done`` batches as fully added; record a checkpoint when it is time.

        Returns whether a checkpoint was written. Only resumable writes (with a key) record any.
        """
        if self.key is None:
            return False
        if not force and time.monotonic() - self._last_checkpoint < self.checkpoint_seconds:
            return False
        from ser_pipeline.atomic import write_json

        tail_crcs = None
        if self._buf_rows:
            block, toks = self._tail()
            tail_crcs = self._write_chunk(None, block, toks, final=False)
        write_json(self.root / STATE_FILE, {
            "store_format": STORE_FORMAT, "key": self.key, "rows": self.rows,
            "batches_done": int(batches_done), "n_frames": self.n_frames, "ids": self.ids,
            "lengths": self.lengths, "crcs": self.crcs, "tail_crcs": tail_crcs,
        })
        self.batches_done = int(batches_done)
        self._last_checkpoint = time.monotonic()
        return True

    # -- finishing ---------------------------------------------------------------------------
    def close(self, attrs: dict) -> None:
        import zarr

        if self._buf_rows:
            block, toks = self._tail()
            self._write_chunk(len(self.crcs["frames"]), block, toks, final=True)
            self._buf, self._buf_rows, self._tok = [], 0, []
        n_utt = len(self.ids)
        offsets = np.zeros(n_utt + 1, dtype="<i8")
        np.cumsum(self.lengths, out=offsets[1:])
        small = {"offsets": _encode_numeric(offsets, []), "utt_ids": _encode_strings(self.ids)}
        crcs = dict(self.crcs)
        for name, data in small.items():
            if name == "offsets" or n_utt:
                _write_file(_chunk_file(self.root, name, 1, 0), data)
            crcs[name] = [_crc(data)] if (name == "offsets" or n_utt) else []
        group = zarr.open_group(str(self.root), mode="a")
        group.create_array("frames", shape=(self.n_frames, self.dim), chunks=(self.rows, self.dim),
                           dtype=self.dtype, compressors=self._codecs or None, fill_value=0,
                           chunk_key_encoding={"name": "default", "separator": "/"})
        group.create_array("offsets", shape=(n_utt + 1,), chunks=(n_utt + 1,), dtype="int64",
                           compressors=None, fill_value=0)
        group.create_array("utt_ids", shape=(n_utt,), chunks=(max(1, n_utt),), dtype=str,
                           compressors=None, fill_value="")
        names = ["frames", "offsets", "utt_ids"]
        if self.with_tokens:
            group.create_array("tokens", shape=(self.n_frames,), chunks=(self.rows,), dtype=str,
                               compressors=None, fill_value="")
            names.append("tokens")
        summaries = {n: _array_summary(_read_json(self.root / n / "zarr.json"), crcs[n]) for n in names}
        (self.root / STATE_FILE).unlink(missing_ok=True)
        for stray in self.root.glob(f".{STATE_FILE}.tmp-*"):  # a checkpoint interrupted mid-write
            stray.unlink()
        _remove(self.root / TAIL_DIR)
        group.attrs.update({
            **attrs, "n_utterances": n_utt, "dim": self.dim, "dtype": self.dtype.name,
            "n_frames": self.n_frames, "chunk_rows": self.rows, "store_format": STORE_FORMAT,
            "checksums": {"algorithm": CHECKSUM, **{n: crcs[n] for n in names}},
            "content_digest": _content_digest(summaries),
        })
        group.attrs["complete"] = True  # last, on its own


class write_store:
    """Context manager: ``with write_store(path, dim, attrs) as w: w.add(...)``; renamed on success.

    With ``resume_key`` (a string that pins everything the content depends on) the write is
    resumable: call ``w.end_batch(k)`` after each batch; ``w.resumed_from`` says how many batches
    an earlier, interrupted write of the same output already stored (skip them). If the block
    raises a SerError (bad input: the next run must differ anyway) or the write was not
    resumable, the partial store is removed; any other interruption keeps it for the next run.
    """

    def __init__(self, path, dim: int, attrs: dict, dtype: str = "float32", with_tokens: bool = False,
                 *, resume_key: str | None = None, chunk_bytes: int | None = None,
                 compressor: str | None = "default", checkpoint_seconds: float | None = None):
        # Defaults are read here, not bound at import, so tests and benchmarks can change them.
        self.path, self.dim, self.attrs, self.dtype, self.with_tokens = Path(path), dim, attrs, dtype, with_tokens
        self.resume_key = resume_key
        self.chunk_bytes = CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
        self.compressor = COMPRESSOR if compressor == "default" else compressor
        self.checkpoint_seconds = CHECKPOINT_SECONDS if checkpoint_seconds is None else checkpoint_seconds
        self.resume_note = ""  # why an existing partial store was or was not resumed

    def __enter__(self) -> StoreWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _Lock(self.path.with_name(f".{self.path.name}.lock"), self.path)
        try:
            for stale in self.path.parent.glob(f".{self.path.name}.tmp-*"):
                _remove(stale)  # left by interrupted writes of older versions
            partial = partial_path(self.path)
            key = None
            if self.resume_key is not None:
                key = hashlib.sha256(json.dumps({
                    "resume_key": self.resume_key, "dim": self.dim, "dtype": np.dtype(self.dtype).name,
                    "with_tokens": self.with_tokens, "compressor": self.compressor,
                    "store_format": STORE_FORMAT}, sort_keys=True).encode()).hexdigest()
            self.writer = StoreWriter(partial, self.dim, self.dtype, self.with_tokens, self.chunk_bytes,
                                      self.compressor, key, self.checkpoint_seconds)
            resumed = False
            if key is not None and (partial / STATE_FILE).exists():
                try:
                    self.writer.try_resume()
                    resumed = True
                    self.resume_note = (f"resuming {partial} after {self.writer.resumed_from} batches "
                                        f"({len(self.writer.ids)} utterances already stored)")
                except _CannotResume as e:
                    self.resume_note = f"not resuming {partial}: {e}; starting afresh"
                    self.writer = StoreWriter(partial, self.dim, self.dtype, self.with_tokens,
                                              self.chunk_bytes, self.compressor, key, self.checkpoint_seconds)
            elif partial.exists():
                self.resume_note = f"removing {partial} (no resumable progress record); starting afresh"
            if not resumed:
                self.writer.start_fresh()
            if self.resume_note:
                print(self.resume_note, file=sys.stderr, flush=True)
        except BaseException:
            self._lock.release()
            raise
        return self.writer

    def __exit__(self, exc_type, exc, tb):
        partial = partial_path(self.path)
        try:
            if exc_type is None:
                try:
                    self.writer.close(self.attrs)
                except BaseException:
                    _remove(partial)
                    raise
                if self.path.exists() or self.path.is_symlink():
                    _remove(self.path)
                os.replace(partial, self.path)
            elif (self.writer.key is None or issubclass(exc_type, SerError)
                  or not (partial / STATE_FILE).exists()):
                _remove(partial)
        finally:
            self._lock.release()
        return False


class _Lock:
    """An exclusive flock on a sibling file: two writers of one store would corrupt it."""

    def __init__(self, lock_path: Path, store: Path):
        self.path = lock_path
        self.fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise SerError(f"{store}: another process is writing this store (lock {lock_path} is held)")

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                os.close(self.fd)
                self.fd = None


def _remove(p: Path) -> None:
    p = Path(p)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _read_json(p: Path) -> dict:
    return json.loads(Path(p).read_text())


# --------------------------------------------------------------------------------------------
# reading


class _Array:
    """One array's metadata as its zarr.json says, checked against the store's attributes."""

    def __init__(self, store: "FeatureStore", name: str, checksums):
        self.store, self.name = store, name
        meta_file = store.path / name / "zarr.json"
        try:
            self.meta = _read_json(meta_file)
        except FileNotFoundError:
            raise StoreError(store.path, "array metadata is missing", name, file=meta_file) from None
        except (OSError, ValueError) as e:
            raise StoreError(store.path, f"array metadata cannot be read ({e})", name, file=meta_file) from None
        try:
            self.shape = tuple(int(s) for s in self.meta["shape"])
            self.chunk_rows = int(self.meta["chunk_grid"]["configuration"]["chunk_shape"][0])
            self.data_type = self.meta["data_type"]
            codecs = self.meta["codecs"]
            sep = self.meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/")
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise StoreError(store.path, f"array metadata lacks {e}", name, file=meta_file) from None
        if self.meta["chunk_key_encoding"].get("name") != "default" or sep != "/":
            raise StoreError(store.path, "unsupported chunk key encoding", name, file=meta_file)
        self.strings = self.data_type == "string"
        first = codecs[0]["name"] if codecs else None
        if self.strings:
            if first != "vlen-utf8":
                raise StoreError(store.path, f"unsupported codecs {codecs}", name, file=meta_file)
        elif first != "bytes" or codecs[0].get("configuration", {}).get("endian", "little") != "little":
            raise StoreError(store.path, f"unsupported codecs {codecs}", name, file=meta_file)
        self.compressor = _numcodec(codecs[1]) if len(codecs) > 1 else None
        if len(codecs) > 2 or (len(codecs) == 2 and self.compressor is None):
            raise StoreError(store.path, f"unsupported codecs {codecs}", name, file=meta_file)
        self.dtype = None if self.strings else np.dtype(self.data_type).newbyteorder("<")
        self.row_shape = self.shape[1:]
        self.n_chunks = -(-self.shape[0] // self.chunk_rows) if self.shape[0] else 0
        self.chunk_nbytes = (None if self.strings else
                             self.chunk_rows * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize)
        self.checksums = [int(c) for c in checksums]
        if len(self.checksums) != self.n_chunks:
            raise StoreError(store.path, f"{len(self.checksums)} chunk checksums recorded for "
                             f"{self.n_chunks} chunks of shape {list(self.shape)}", name, file=meta_file)
        self.summary = _array_summary(self.meta, self.checksums)

    def file(self, i: int) -> Path:
        return _chunk_file(self.store.path, self.name, len(self.shape), i)

    def fail(self, i: int, reason: str):
        raise StoreError(self.store.path, reason, self.name, i, self.file(i))

    def read(self, i: int, out: np.ndarray | None = None, finite: bool = False):
        """Chunk ``i`` verified against its checksum: decoded into ``out`` (rows of the chunk
        shape) for numbers, returned as a list of str for strings. ``finite``: also refuse NaN/inf.

        An uncompressed chunk is read straight into ``out`` in pieces of PIECE_BYTES, each one
        checksummed (crc32c extends piece by piece) and checked for finite values while it is still
        in the CPU cache: a second pass over a whole chunk would come from memory instead.
        """
        path = self.file(i)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self.fail(i, "chunk file is missing (a Zarr reader would silently fill it with zeros)")
        except OSError as e:
            self.fail(i, f"chunk file cannot be opened ({e.strerror})")
        bad = None  # first non-finite element, checked only once the checksum has passed
        try:
            size = os.fstat(fd).st_size
            raw = self.compressor is None and not self.strings
            if raw and size != self.chunk_nbytes:
                self.fail(i, f"chunk file has {size} bytes, expected {self.chunk_nbytes} (truncated or overwritten)")
            if raw and out is not None:
                import google_crc32c

                flat = out.reshape(-1)
                buf = memoryview(flat).cast("B")
                crc = got = 0
                item = flat.itemsize
                while got < size:
                    n = os.preadv(fd, [buf[got:min(size, got + PIECE_BYTES)]], got)
                    if n <= 0:
                        break
                    piece = np.frombuffer(buf[got:got + n], dtype=np.uint8)
                    piece.flags.writeable = False
                    crc = google_crc32c.extend(crc, piece)
                    if finite and bad is None:
                        vals = flat[got // item:(got + n) // item]
                        if not np.isfinite(vals).all():
                            bad = got // item + int(np.flatnonzero(~np.isfinite(vals))[0])
                    got += n
                if got != size:
                    self.fail(i, f"chunk file ended after {got} of {size} bytes (truncated)")
            else:
                data = b"".join(iter(lambda: os.read(fd, 1 << 24), b""))
                crc = _crc(data)
        finally:
            os.close(fd)
        if crc != self.checksums[i]:
            self.fail(i, "chunk bytes do not match the checksum recorded when the store was written "
                         "(overwritten or corrupted on disk)")
        if raw and out is not None:
            self._raise_nonfinite(i, bad)
            return out
        if self.strings:
            from numcodecs import VLenUTF8

            try:
                items = VLenUTF8().decode(self.compressor.decode(data) if self.compressor else data)
            except Exception as e:
                self.fail(i, f"chunk cannot be decoded ({e})")
            return [str(s) for s in items]
        if self.compressor is not None:
            try:
                dec = self.compressor.decode(data)
            except Exception as e:
                self.fail(i, f"chunk cannot be decompressed ({e})")
            if len(memoryview(dec).cast("B")) != self.chunk_nbytes:
                self.fail(i, f"chunk decompresses to {len(dec)} bytes, expected {self.chunk_nbytes}")
            arr = np.frombuffer(dec, dtype=self.dtype).reshape((self.chunk_rows, *self.row_shape))
        else:
            arr = np.frombuffer(data, dtype=self.dtype).reshape((self.chunk_rows, *self.row_shape))
        if out is not None:
            out[...] = arr
            arr = out
        if finite and not np.isfinite(arr).all():
            self._raise_nonfinite(i, int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0]))
        return arr

    def _raise_nonfinite(self, i: int, bad: int | None) -> None:
        if bad is None:
            return
        row = i * self.chunk_rows + bad // max(1, int(np.prod(self.row_shape, dtype=np.int64)))
        where = self.store.utterance_at(row)
        self.fail(i, f"non-finite values (NaN/inf) at frame row {row}" + (f" (utterance {where})" if where else ""))


class FeatureStore:
    """Read side. Opening checks metadata, offsets and ids; ``load(ids)`` reads only the chunks
    those utterances touch, each verified against its checksum and checked for non-finite values.

    Every problem raises StoreError naming the store, the array and the chunk file.
    """

    def __init__(self, path, threads: int | None = None):
        self.path = Path(path)
        self.threads = max(1, int(READ_THREADS if threads is None else threads))
        try:
            meta = _read_json(self.path / "zarr.json")
        except FileNotFoundError:
            raise StoreError(self.path, "not a feature store (no zarr.json); run the extract step first") from None
        except (OSError, ValueError) as e:
            raise StoreError(self.path, f"group metadata zarr.json cannot be read ({e})") from None
        attrs = meta.get("attributes") or {}
        self.attrs = attrs
        if attrs.get("complete") is not True:
            raise StoreError(self.path, "store is incomplete (interrupted extraction?): its 'complete' flag is missing")
        if attrs.get("store_format") != STORE_FORMAT or "content_digest" not in attrs:
            raise StoreError(self.path, f"store format {attrs.get('store_format', 1)} has no chunk checksums "
                                        f"(written by an older version; this one reads format {STORE_FORMAT})")
        sums = attrs.get("checksums") or {}
        if sums.get("algorithm") != CHECKSUM:
            raise StoreError(self.path, f"unknown checksum algorithm {sums.get('algorithm')}")
        try:
            n_utt, n_frames, dim = int(attrs["n_utterances"]), int(attrs["n_frames"]), int(attrs["dim"])
            dtype = np.dtype(attrs["dtype"])
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(self.path, f"attribute {e} is missing or invalid") from None
        names = ["frames", "offsets", "utt_ids"] + (["tokens"] if "tokens" in sums else [])
        for n in names:
            if n not in sums:
                raise StoreError(self.path, "no chunk checksums recorded", n)
        self.arrays = {n: _Array(self, n, sums[n]) for n in names}
        expect = {"frames": ((n_frames, dim), dtype.name), "offsets": ((n_utt + 1,), "int64"),
                  "utt_ids": ((n_utt,), "string"), "tokens": ((n_frames,), "string")}
        for n, a in self.arrays.items():
            shape, dt = expect[n]
            if a.shape != shape or a.data_type != dt:
                raise StoreError(self.path, f"metadata says shape {list(a.shape)} {a.data_type}, the store's "
                                            f"attributes say {list(shape)} {dt}", n, file=self.path / n / "zarr.json")
        if _content_digest({n: a.summary for n, a in self.arrays.items()}) != attrs["content_digest"]:
            raise StoreError(self.path, "array metadata or chunk checksums do not match the content digest "
                                        "recorded when the store was written (zarr.json edited or damaged)")
        off = self.arrays["offsets"]
        self.offsets = off.read(0, np.empty(off.chunk_rows, dtype=off.dtype))[: n_utt + 1].astype(np.int64)
        if self.offsets[0] != 0 or self.offsets[-1] != n_frames or np.any(np.diff(self.offsets) < 0):
            bad = int(np.argmax(np.diff(self.offsets) < 0)) if np.any(np.diff(self.offsets) < 0) else None
            raise StoreError(self.path, f"offsets must rise from 0 to {n_frames} (first {self.offsets[0]}, "
                                        f"last {self.offsets[-1]}"
                                        + (f", falls after utterance {bad}" if bad is not None else "") + ")",
                             "offsets", 0, off.file(0))
        ids = self.arrays["utt_ids"]
        self.utt_ids = ids.read(0) if n_utt else []
        if len(self.utt_ids) != n_utt:
            raise StoreError(self.path, f"holds {len(self.utt_ids)} utterance ids, expected {n_utt}",
                             "utt_ids", 0, ids.file(0))
        self.index = {u: i for i, u in enumerate(self.utt_ids)}
        if len(self.index) != n_utt:
            seen, dup = set(), []
            for u in self.utt_ids:
                if u in seen:
                    dup.append(u)
                seen.add(u)
            raise StoreError(self.path, f"utterance ids are not unique, e.g. {dup[:3]}", "utt_ids", 0, ids.file(0))

    @property
    def dim(self) -> int:
        return int(self.attrs["dim"])

    @property
    def content_digest(self) -> str:
        """sha256 over every chunk checksum and array's metadata: names exactly what was read."""
        return self.attrs["content_digest"]

    def __len__(self) -> int:
        return len(self.utt_ids)

    def _rows(self, ids):
        missing = [u for u in ids if u not in self.index]
        if missing:
            raise SerError(f"{self.path}: {len(missing)} utterances missing from the store, e.g. {missing[:3]}")
        return np.array([self.index[u] for u in ids], dtype=np.int64)

    def _touched_runs(self, rows: np.ndarray, arr: _Array) -> list[tuple[int, int]]:
        """Runs [a, b) of consecutive chunk indices that the rows' frames lie in."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        keep = ends > starts
        if not keep.any():
            return []
        first, last = starts[keep] // arr.chunk_rows, (ends[keep] - 1) // arr.chunk_rows
        cover = np.zeros(arr.n_chunks + 1, dtype=np.int64)
        np.add.at(cover, first, 1)
        np.add.at(cover, last + 1, -1)
        touched = np.flatnonzero(np.cumsum(cover)[:-1] > 0)
        breaks = np.flatnonzero(np.diff(touched) > 1)
        a = np.concatenate([[touched[0]], touched[breaks + 1]])
        b = np.concatenate([touched[breaks], [touched[-1]]]) + 1
        return list(zip(a.tolist(), b.tolist()))

    def utterance_at(self, row: int) -> str | None:
        """The utterance whose frames include ``row`` (for error messages)."""
        offsets = getattr(self, "offsets", None)
        if offsets is None or not 0 <= row < offsets[-1]:
            return None
        return self.utt_ids[int(np.searchsorted(offsets, row, side="right")) - 1]

    def load(self, ids=None, dtype=np.float32) -> list[np.ndarray]:
        """Frames of each utterance in ``ids`` (default: all), in that order.

        Chunks are read into one buffer per run of consecutive touched chunks and utterances are
        returned as views into it; when the requested rows fill less than half of what was read,
        they are copied out so the rest of the chunks can be freed.
        """
        ids = self.utt_ids if ids is None else list(ids)
        rows = self._rows(ids)
        arr = self.arrays["frames"]
        if len(rows) == 0:
            return []
        runs = self._touched_runs(rows, arr)
        R = arr.chunk_rows
        buffers = [np.empty(((b - a) * R, self.dim), dtype=arr.dtype) for a, b in runs]
        jobs = [(k, i) for k, (a, b) in enumerate(runs) for i in range(a, b)]

        def one(job_index):
            k, i = jobs[job_index]
            a = runs[k][0]
            arr.read(i, buffers[k][(i - a) * R:(i - a + 1) * R], finite=True)

        if self.threads > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(min(self.threads, len(jobs))) as ex:
                for _ in ex.map(one, range(len(jobs))):
                    pass
        else:
            for j in range(len(jobs)):
                one(j)
        want = np.dtype(dtype) if dtype is not None else arr.dtype.newbyteorder("=")
        if want != arr.dtype:
            buffers = [b.astype(want) for b in buffers]
        run_starts = np.array([a for a, _ in runs], dtype=np.int64) * R
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        which = np.searchsorted(run_starts, starts, side="right") - 1
        out = []
        for s, e, k in zip(starts.tolist(), ends.tolist(), which.tolist()):
            if e == s:
                out.append(np.empty((0, self.dim), dtype=want))
            else:
                base = int(run_starts[k])
                out.append(buffers[k][s - base:e - base])
        if int((ends - starts).sum()) * 2 < sum(len(b) for b in buffers):
            out = [o.copy() for o in out]
        return out

    def load_tokens(self, ids=None) -> list[list[str]]:
        if "tokens" not in self.arrays:
            raise SerError(f"{self.path}: this store has no tokens")
        ids = self.utt_ids if ids is None else list(ids)
        rows = self._rows(ids)
        arr = self.arrays["tokens"]
        chunks: dict[int, list[str]] = {}
        for a, b in self._touched_runs(rows, arr):
            for i in range(a, b):
                chunks[i] = arr.read(i)
        R, out = arr.chunk_rows, []
        for r in rows.tolist():
            s, e = int(self.offsets[r]), int(self.offsets[r + 1])
            out.append([chunks[j // R][j % R] for j in range(s, e)])
        return out

    def verify(self) -> None:
        """Read and check every chunk of every array (what ``load`` does for the chunks it needs)."""
        for name, arr in self.arrays.items():
            for i in range(arr.n_chunks):
                if arr.strings:
                    arr.read(i)
                else:
                    arr.read(i, np.empty((arr.chunk_rows, *arr.row_shape), dtype=arr.dtype),
                             finite=name == "frames")


def is_complete(path) -> bool:
    try:
        return _read_json(Path(path) / "zarr.json").get("attributes", {}).get("complete") is True
    except (OSError, ValueError):
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


__all__ = ["FeatureStore", "StoreError", "write_store", "is_complete", "library_versions", "partial_path",
           "chunk_rows", "CHUNK_BYTES", "COMPRESSOR", "READ_THREADS"]

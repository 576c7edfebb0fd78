"""Content checksums for model weights, so a feature store records exactly which model made it.

A model name or path says nothing about the bytes behind it (a hub id moves, a local folder
gets overwritten), while the features depend on those bytes; the extractors therefore put
these checksums into ``info()`` and the store keeps them beside the features.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20

# Hashing a 1 GB checkpoint takes seconds; an extractor may be built several times per process
# (one per store, per device), so results are remembered for as long as the file looks unchanged.
_MEMO: dict[tuple, str] = {}


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def file_sha256(path) -> str:
    """Hex sha256 of one file (symlinks followed, as hub caches store weights behind links)."""
    path = Path(path)
    key = ("file",) + _stat_key(path)
    if key not in _MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                h.update(block)
        _MEMO[key] = h.hexdigest()
    return _MEMO[key]


def _listed_files(root: Path) -> list[Path]:
    # Hidden entries (".cache/" written by huggingface_hub downloads, ".git/") and bytecode are
    # bookkeeping, not model content; counting them would change the checksum of identical models.
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in filenames:
            if name.startswith("."):
                continue
            out.append(Path(dirpath) / name)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def dir_checksum(path) -> str:
    """Hex sha256 over every file in a model folder: relative path and content hash of each.

    Config and tokenizer files are included on purpose: they change the outputs as surely as
    the weights do. The relative paths are hashed too, so renaming a file changes the checksum.
    """
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    files = _listed_files(root)
    if not files:
        raise FileNotFoundError(f"{root}: folder holds no files to checksum")
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode("utf-8"))
        h.update(b"\0")
        h.update(file_sha256(f).encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()

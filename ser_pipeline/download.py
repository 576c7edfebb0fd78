"""Verified, resumable downloads and safe archive extraction for the open corpora.

A corpus that arrives truncated or altered still trains and only gives slightly wrong
numbers, so nothing downloaded here is used before its size and checksum match the
published (or pinned) values. The pattern follows lhotse's recipes (resumable download,
checksum, ``.completed`` marker) using only the standard library.

Files on disk, and which of them a reader may trust:

- ``<dest>``: only ever created by renaming a fully downloaded and verified file.
- ``.<dest name>.part`` (same folder): the download in progress. It is kept when a
  connection breaks, so the next attempt (or the next run) resumes it with an HTTP Range
  request; it is deleted when the finished file fails verification (a corrupt file must not
  be resumed) or is longer than expected. No reader or Snakemake pattern matches it.
- ``<target>/.completed``: written inside an extracted folder before that folder is renamed
  into place, so a folder with the marker is a complete extraction of the archive it names.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ser_pipeline import __version__
from ser_pipeline.errors import ConfigError, CorpusError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MARKER = ".completed"
USER_AGENT = f"ser_pipeline/{__version__} (+corpus download; python-urllib)"
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_TAR_FILTER_ERROR = getattr(tarfile, "FilterError", ())
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)


class DownloadError(CorpusError):
    """A download that failed or does not match its published size/checksum."""


class _RestartNeeded(ConnectionError):
    """The partial file cannot be resumed; the retry starts from byte 0."""


# ---------------------------------------------------------------- downloads

def download(url: str, dest, *, size: int | None = None, md5: str | None = None, sha256: str | None = None,
             retries: int = 5, timeout: float = 60.0, backoff: float = 2.0) -> Path:
    """Download ``url`` to ``dest`` and verify it; a complete, verified ``dest`` is left alone.

    ``size`` (bytes), ``md5`` and ``sha256`` (hex) are checked when given. A broken
    connection is retried up to ``retries`` times, resuming from the bytes already received
    when the server honours the Range request (status 206 with a matching Content-Range) and
    starting over otherwise. Raises DownloadError naming the URL (and for a checksum mismatch
    the expected and the actual digest).
    """
    dest = Path(dest)
    expected = _expected(md5=md5, sha256=sha256)
    if dest.exists():
        _verify(dest, size, expected, where=f"{dest} (already present, from {url}; delete it to download again)")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    attempt = 0
    while True:
        try:
            _fetch(url, part, size, timeout)
            break
        except _TRANSIENT as e:
            attempt += 1
            if isinstance(e, _RestartNeeded):
                part.unlink(missing_ok=True)
            have = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                raise DownloadError(f"{url}: download failed after {retries} retries ({_describe(e)}); "
                                    f"{have} bytes kept in {part}, run again to resume") from None
            log.warning("%s: %s after %d bytes; retry %d of %d", url, _describe(e), have, attempt, retries)
            time.sleep(backoff * (2 ** (attempt - 1)))
    try:
        _verify(part, size, expected, where=url)
    except DownloadError:
        part.unlink(missing_ok=True)  # never resume from a file known to be wrong
        raise
    os.replace(part, dest)
    return dest


def partial_path(dest) -> Path:
    """Where an unfinished download of ``dest`` lives (stable, so a later run resumes it)."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.part")


def _fetch(url: str, part: Path, size: int | None, timeout: float) -> None:
    """Fill ``part`` with the whole body of ``url``, resuming what it holds when possible.

    Raises a _TRANSIENT error when the connection breaks, so the caller retries.
    """
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        log.warning("%s: partial file %s is longer than the expected %d bytes; starting over", url, part, size)
        part.unlink()
        have = 0
    if size is not None and have == size:
        return
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range not satisfiable: the part is complete or not ours
            log.warning("%s: server refused to resume at byte %d (416); starting over", url, have)
            part.unlink()
            return _fetch(url, part, size, timeout)
        if e.code in (408, 429) or e.code >= 500:
            raise  # HTTPError is a URLError: retried
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    with resp:
        offset, total = _response_range(resp, have, url)
        mode = "ab" if offset else "wb"
        if have and not offset:
            log.warning("%s: server ignored the Range request (status %s); downloading from the start",
                        url, resp.status)
        received = offset
        with open(part, mode) as f:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
    total = total if total is not None else size
    if total is not None and received < total:
        # http.client returns an empty read, not an error, when the peer closes early
        raise ConnectionError(f"connection closed after {received} of {total} bytes")


def _response_range(resp, have: int, url: str) -> tuple[int, int | None]:
    """(byte offset the body starts at, total length of the file or None)."""
    length = resp.headers.get("Content-Length")
    if have and resp.status == 206:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "").strip())
        if m and int(m.group(1)) == have:
            return have, (int(m.group(3)) if m.group(3) != "*" else have + int(length) if length else None)
        log.warning("%s: 206 with Content-Range %r does not start at byte %d; starting over",
                    url, resp.headers.get("Content-Range"), have)
        raise _RestartNeeded("server answered the Range request with a different range")
    if resp.status != 200:
        raise DownloadError(f"{url}: unexpected HTTP status {resp.status}")
    return 0, (int(length) if length and length.isdigit() else None)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _expected(**digests) -> dict[str, str]:
    out = {}
    for algo, value in digests.items():
        if value is None:
            continue
        value = value.strip().lower()
        width = hashlib.new(algo).digest_size * 2
        if not re.fullmatch(rf"[0-9a-f]{{{width}}}", value):
            raise ConfigError(f"{algo}: must be {width} hex digits, got {value!r}")
        out[algo] = value
    return out


def file_digest(path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path, *, size: int | None = None, md5: str | None = None, sha256: str | None = None,
                what: str | None = None) -> None:
    """Raise DownloadError unless ``path`` has the given size and digests."""
    _verify(Path(path), size, _expected(md5=md5, sha256=sha256), where=what or str(path))


def _verify(path: Path, size, expected: dict, where: str) -> None:
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(f"{where}: size mismatch: expected {size} bytes, got {actual_size}")
    for algo, want in expected.items():
        got = file_digest(path, algo)
        if got != want:
            raise DownloadError(f"{where}: {algo} mismatch: expected {want}, got {got}")


# ---------------------------------------------------------------- archives

def extract_archive(archive, target, *, size: int | None = None, md5: str | None = None,
                    sha256: str | None = None) -> Path:
    """Unpack a zip or tar(.gz/.bz2/.xz) ``archive`` into the folder ``target``.

    Verifies ``archive`` first when size/digests are given, checks every member before
    writing any (absolute paths, ``..``, links pointing outside, devices: a CorpusError naming
    the member), unpacks into a temporary sibling folder and renames it to ``target`` with a
    ``.completed`` marker inside. A target already marked for the same archive is left alone
    (also when the archive has since been deleted).
    """
    archive, target = Path(archive), Path(target)
    stamp = {"archive": archive.name, "size": archive.stat().st_size if archive.exists() else None}
    marker = target / MARKER
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("archive") == stamp["archive"] and stamp["size"] in (None, done.get("size")):
            return target  # done; the archive may have been deleted to save space
        raise CorpusError(f"{target}: holds an extraction of {done.get('archive')} ({done.get('size')} bytes), "
                          f"not of {archive} ({stamp['size']} bytes); remove it or choose another folder")
    if target.exists():
        raise CorpusError(f"{target}: exists but is not a completed extraction (no {MARKER} marker); "
                          f"remove it or choose another folder")
    if not archive.is_file():
        raise CorpusError(f"{archive}: archive does not exist")
    if size is not None or md5 or sha256:
        verify_file(archive, size=size, md5=md5, sha256=sha256)
    tmp = target.with_name(f".{target.name}.extract-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp)
        else:
            raise CorpusError(f"{archive}: neither a zip nor a tar archive")
        (tmp / MARKER).write_text(json.dumps(stamp) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, target)
    return target


def is_extracted(target, archive_name: str) -> bool:
    """Whether ``target`` is a completed extraction of an archive called ``archive_name``."""
    marker = Path(target) / MARKER
    return marker.is_file() and json.loads(marker.read_text()).get("archive") == archive_name


def _member_path(archive: Path, name: str) -> PurePosixPath:
    """The member's path relative to the target, or a CorpusError if it would leave it."""
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or p.is_absolute():
        raise CorpusError(f"{archive}: member '{name}' has an absolute path; refusing to extract")
    if ".." in p.parts:
        raise CorpusError(f"{archive}: member '{name}' points outside the target folder (..); refusing to extract")
    parts = [part for part in p.parts if part not in ("", ".")]
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _check_link(archive: Path, name: str, rel: PurePosixPath, link: str, hard: bool = False) -> None:
    link = link.replace("\\", "/")
    base = PurePosixPath(".") if hard else rel.parent  # hard links are relative to the archive root
    if link.startswith("/") or ".." in _normalise(base / link).parts[:1]:
        raise CorpusError(f"{archive}: member '{name}' is a link to '{link}' outside the target folder; "
                          f"refusing to extract")


def _normalise(p: PurePosixPath) -> PurePosixPath:
    out: list[str] = []
    for part in p.parts:
        if part in ("", "."):
            continue
        if part == ".." and out and out[-1] != "..":
            out.pop()
        else:
            out.append(part)
    return PurePosixPath(*out) if out else PurePosixPath(".")


def _extract_zip(archive: Path, out: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        members = []
        for info in z.infolist():
            rel = _member_path(archive, info.filename)
            mode = info.external_attr >> 16
            is_link = stat.S_ISLNK(mode)
            if is_link:
                _check_link(archive, info.filename, rel, z.read(info).decode("utf-8", "replace"))
            members.append((info, rel, is_link))
        for info, rel, is_link in members:  # every member checked before anything is written
            dest = out / rel
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if is_link:
                os.symlink(z.read(info).decode("utf-8"), dest)
                continue
            with z.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)


def _extract_tar(archive: Path, out: Path) -> None:
    with tarfile.open(archive) as t:
        members = t.getmembers()
        for m in members:
            rel = _member_path(archive, m.name)
            if m.issym():
                _check_link(archive, m.name, rel, m.linkname)
            elif m.islnk():
                _check_link(archive, m.name, rel, m.linkname, hard=True)
            elif not (m.isfile() or m.isdir()):
                raise CorpusError(f"{archive}: member '{m.name}' is a device, fifo or other special file; "
                                  f"refusing to extract")
        # the checks above give the member-naming errors; the 'data' filter (Python >= 3.11.4)
        # is a second line of defence and drops owners and odd permission bits
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        try:
            t.extractall(out, members=members, **kwargs)
        except _TAR_FILTER_ERROR as e:  # pragma: no cover - caught above first
            raise CorpusError(f"{archive}: {e}; refusing to extract") from None


# ---------------------------------------------------------------- corpora

DOWNLOADERS = {
    "ravdess": ("ravdess", "download_ravdess"),
    "crema_d": ("crema_d", "download_crema_d"),
    "emodb": ("emodb", "download_emodb"),
}


def download_corpus(name: str, target, **options) -> Path:
    """Run ``download_<corpus>(target, **options)`` of the corpus module registered as ``name``."""
    import importlib

    if name not in DOWNLOADERS:
        raise CorpusError(f"no downloader for corpus '{name}'; known: {sorted(DOWNLOADERS)} "
                          f"(IEMOCAP and other licensed corpora are brought by the user)")
    module, func = DOWNLOADERS[name]
    return getattr(importlib.import_module(f"ser_pipeline.corpora.{module}"), func)(target, **options)


def main(argv=None) -> int:
    """``python -m ser_pipeline.download <corpus> <target> [--pointers DIR]``."""
    import argparse

    from ser_pipeline.errors import SerError

    ap = argparse.ArgumentParser(prog="python -m ser_pipeline.download", description=main.__doc__)
    ap.add_argument("corpus", choices=sorted(DOWNLOADERS))
    ap.add_argument("target", help="folder to download and extract into")
    ap.add_argument("--pointers", help="crema_d: checkout (without LFS content) or its AudioWAV pointer folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    options = {"pointers": args.pointers} if args.pointers else {}
    try:
        print(download_corpus(args.corpus, args.target, **options))
    except SerError as e:
        print(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Verified downloads and safe extraction, against a Range-aware HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ser_pipeline.download import DownloadError, download, extract_archive, partial_path
from ser_pipeline.errors import ConfigError, CorpusError

BODY = bytes(range(256)) * 200  # 51,200 bytes, every byte position distinguishable


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours Range unless told not to; can cut a response short."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start, rng = 0, self.headers.get("Range")
        if rng and srv.wrong_range:  # claims 206 but sends the file from byte 0
            srv.wrong_range = False
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(body)}")
        elif rng and srv.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if srv.cuts:  # send only part of the body, then drop the connection
            payload = payload[: srv.cuts.pop(0)]
            self.close_connection = True
        self.wfile.write(payload)
        self.wfile.flush()


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.cuts, srv.honour_range, srv.wrong_range = {}, [], [], True, False
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _digests(data):
    return dict(size=len(data), md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest())


def test_good_download_is_verified_and_a_repeat_is_a_no_op(server, tmp_path):
    server.files["/a.zip"] = BODY
    dest = download(server.url + "/a.zip", tmp_path / "a.zip", **_digests(BODY), backoff=0)
    assert dest.read_bytes() == BODY
    assert not partial_path(dest).exists()
    n = len(server.requests)
    download(server.url + "/a.zip", dest, **_digests(BODY), backoff=0)
    assert len(server.requests) == n  # verified on disk, not fetched again


def test_checksum_mismatch_names_url_and_both_digests_and_leaves_nothing_complete(server, tmp_path):
    corrupted = bytearray(BODY)
    corrupted[1000] ^= 0xFF
    server.files["/a.zip"] = bytes(corrupted)
    want = _digests(BODY)
    with pytest.raises(DownloadError) as e:
        download(server.url + "/a.zip", tmp_path / "a.zip", **want, backoff=0)
    msg = str(e.value)
    assert server.url + "/a.zip" in msg and want["md5"] in msg
    assert hashlib.md5(corrupted).hexdigest() in msg
    assert not (tmp_path / "a.zip").exists()
    assert not partial_path(tmp_path / "a.zip").exists()  # a corrupt file is never resumed
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(server.url + "/a.zip", tmp_path / "a.zip", sha256=want["sha256"], backoff=0)


def test_size_mismatch_is_an_error(server, tmp_path):
    server.files["/a.zip"] = BODY
    with pytest.raises(DownloadError, match=f"expected {len(BODY) + 1} bytes, got {len(BODY)}"):
        download(server.url + "/a.zip", tmp_path / "a.zip", size=len(BODY) + 1, backoff=0)


def test_cut_connection_resumes_with_range(server, tmp_path):
    server.files["/a.zip"] = BODY
    server.cuts = [10_000]
    dest = download(server.url + "/a.zip", tmp_path / "a.zip", **_digests(BODY), backoff=0)
    assert dest.read_bytes() == BODY
    assert server.requests == [("/a.zip", None), ("/a.zip", "bytes=10000-")]


def test_interrupted_download_resumes_in_a_later_run(server, tmp_path):
    server.files["/a.zip"] = BODY
    server.cuts = [20_000]
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server.url + "/a.zip", tmp_path / "a.zip", **_digests(BODY), retries=0, backoff=0)
    assert not (tmp_path / "a.zip").exists()
    assert partial_path(tmp_path / "a.zip").stat().st_size == 20_000
    download(server.url + "/a.zip", tmp_path / "a.zip", **_digests(BODY), retries=0, backoff=0)
    assert (tmp_path / "a.zip").read_bytes() == BODY
    assert server.requests[-1] == ("/a.zip", "bytes=20000-")


def test_server_ignoring_range_restarts_from_the_beginning(server, tmp_path, caplog):
    server.files["/a.zip"] = BODY
    server.honour_range = False
    server.cuts = [10_000]
    with caplog.at_level(logging.WARNING, logger="ser_pipeline.download"):
        dest = download(server.url + "/a.zip", tmp_path / "a.zip", **_digests(BODY), backoff=0)
    assert dest.read_bytes() == BODY  # not 10,000 bytes twice
    assert server.requests[1] == ("/a.zip", "bytes=10000-")
    assert "ignored the Range request" in caplog.text


def test_206_with_a_different_range_restarts_from_the_beginning(server, tmp_path):
    server.files["/a.zip"] = BODY
    server.cuts = [10_000]
    server.wrong_range = True
    dest = download(server.url + "/a.zip", tmp_path / "a.zip", **_digests(BODY), backoff=0)
    assert dest.read_bytes() == BODY
    assert server.requests == [("/a.zip", None), ("/a.zip", "bytes=10000-"), ("/a.zip", None)]


def test_malformed_digest_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sha256: must be 64 hex digits"):
        download("http://127.0.0.1:9/a.zip", tmp_path / "a.zip", sha256="abc")


def test_partial_longer_than_expected_starts_over(server, tmp_path):
    server.files["/a.zip"] = BODY
    partial_path(tmp_path / "a.zip").write_bytes(b"x" * (len(BODY) + 5))
    download(server.url + "/a.zip", tmp_path / "a.zip", **_digests(BODY), backoff=0)
    assert (tmp_path / "a.zip").read_bytes() == BODY


def test_http_error_names_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing.zip: HTTP 404"):
        download(server.url + "/missing.zip", tmp_path / "m.zip", backoff=0)


def test_existing_file_that_fails_verification_is_not_trusted(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"not it")
    with pytest.raises(DownloadError, match="already present"):
        download("http://127.0.0.1:9/a.zip", tmp_path / "a.zip", md5=hashlib.md5(BODY).hexdigest())


# ---------------------------------------------------------------- archives

def _zip(path, members):
    """members: (name, bytes) or (name, ('link', target))."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            if isinstance(data, tuple):
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                z.writestr(info, data[1])
            else:
                z.writestr(name, data)
    return path


def _tar(path, members):
    """members: (name, bytes) or (name, ('sym'|'hard', target))."""
    with tarfile.open(path, "w:gz") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                info.linkname = data[1]
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return path


GOOD = [("corpus/Actor_01/a.wav", b"aaa"), ("corpus/readme.txt", b"hello")]


@pytest.mark.parametrize("make", [_zip, _tar])
def test_extract_good_archive_with_marker_and_repeat_is_a_no_op(tmp_path, make):
    archive = make(tmp_path / ("x.zip" if make is _zip else "x.tar.gz"), GOOD)
    target = extract_archive(archive, tmp_path / "out", **_digests(archive.read_bytes()))
    assert (target / "corpus" / "Actor_01" / "a.wav").read_bytes() == b"aaa"
    assert (target / ".completed").is_file()
    assert not (tmp_path / ".out.extract-tmp").exists()
    (target / "corpus" / "readme.txt").write_text("edited by the user")
    extract_archive(archive, target)
    assert (target / "corpus" / "readme.txt").read_text() == "edited by the user"
    archive.unlink()  # deleted to save space: still done
    assert extract_archive(archive, target) == target


def test_marker_of_another_archive_is_an_error(tmp_path):
    target = extract_archive(_zip(tmp_path / "x.zip", GOOD), tmp_path / "out")
    with pytest.raises(CorpusError, match="holds an extraction of x.zip"):
        extract_archive(_zip(tmp_path / "y.zip", GOOD), target)


def test_archive_is_verified_before_anything_is_unpacked(tmp_path):
    archive = _zip(tmp_path / "x.zip", GOOD)
    with pytest.raises(DownloadError, match="md5 mismatch"):
        extract_archive(archive, tmp_path / "out", md5="0" * 32)
    assert not (tmp_path / "out").exists()


def test_existing_unmarked_target_is_refused(tmp_path):
    archive = _zip(tmp_path / "x.zip", GOOD)
    (tmp_path / "out").mkdir()
    with pytest.raises(CorpusError, match="not a completed extraction"):
        extract_archive(archive, tmp_path / "out")


@pytest.mark.parametrize("make", [_zip, _tar])
@pytest.mark.parametrize("bad, what", [
    ("../evil.txt", ".."),
    ("corpus/../../evil.txt", ".."),
    ("/tmp/abs-evil.txt", "absolute"),
])
def test_path_escaping_members_are_refused(tmp_path, make, bad, what):
    archive = make(tmp_path / ("x.zip" if make is _zip else "x.tar.gz"), GOOD + [(bad, b"evil")])
    with pytest.raises(CorpusError, match=f"member '{bad}'.*{what}") as e:
        extract_archive(archive, tmp_path / "sub" / "out")
    assert "refusing" in str(e.value)
    assert not (tmp_path / "sub" / "out").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()


@pytest.mark.parametrize("make, link", [
    (_zip, ("link", "../../outside")),
    (_zip, ("link", "/etc/passwd")),
    (_tar, ("sym", "../../outside")),
    (_tar, ("sym", "/etc/passwd")),
    (_tar, ("hard", "../outside")),
])
def test_links_pointing_outside_are_refused(tmp_path, make, link):
    archive = make(tmp_path / ("x.zip" if make is _zip else "x.tar.gz"), GOOD + [("corpus/lnk", link)])
    with pytest.raises(CorpusError, match="member 'corpus/lnk' is a link"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make", [_zip, _tar])
def test_links_inside_the_target_are_kept(tmp_path, make):
    archive = make(tmp_path / ("x.zip" if make is _zip else "x.tar.gz"),
                   GOOD + [("corpus/lnk", ("link" if make is _zip else "sym", "readme.txt"))])
    target = extract_archive(archive, tmp_path / "out")
    assert os.path.islink(target / "corpus" / "lnk")
    assert (target / "corpus" / "lnk").read_bytes() == b"hello"


def test_download_corpus_names_known_downloaders_and_the_command_line_reports_errors(tmp_path, capsys):
    from ser_pipeline.download import download_corpus, main

    with pytest.raises(CorpusError, match=r"no downloader for corpus 'iemocap'.*brought by the user"):
        download_corpus("iemocap", tmp_path)
    (tmp_path / "pointers").mkdir()
    assert main(["crema_d", str(tmp_path / "out"), "--pointers", str(tmp_path / "pointers")]) == 1
    assert "no CREMA-D pointer files" in capsys.readouterr().out

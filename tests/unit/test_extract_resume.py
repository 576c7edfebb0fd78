"""An extraction killed with SIGKILL resumes after its last checkpoint and ends with the same
store as an uninterrupted run; stale temporary folders of earlier writers are removed.

The extraction runs in a child process (the real runner and extractor) that a small driver
script instruments from outside the package: it logs every utterance it reads and every
checkpoint, and sleeps after each batch so the test can kill it after a few checkpoints.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ser_pipeline.store as store_mod
from ser_pipeline.audio import write_audio
from ser_pipeline.manifest import normalise, write_manifest
from ser_pipeline.store import FeatureStore, partial_path

REPO = Path(__file__).resolve().parents[2]
SPEC = {"extractor": "lld", "params": {}, "batch_items": 2}
CHUNK_BYTES = 34 * 4 * 24  # 24 lld frames per chunk: the corpus spans many chunks

DRIVER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, sys.argv[1])
    import ser_pipeline.store as store
    from ser_pipeline.features import runner

    store.CHUNK_BYTES = int(os.environ["CHUNK_BYTES"])
    log = open(os.environ["PROGRESS"], "a", buffering=1)
    delay = float(os.environ["DELAY"])
    load = runner.load_waveform

    def logged_load(row, *a):
        log.write(f"extract {row.utt_id}\\n")
        return load(row, *a)

    end_batch = store.StoreWriter.end_batch

    def logged_end_batch(self, k, force=False):
        wrote = end_batch(self, k, force)
        if wrote:
            log.write(f"checkpoint {k}\\n")
        time.sleep(delay)
        return wrote

    runner.load_waveform = logged_load
    store.StoreWriter.end_batch = logged_end_batch
    runner.extract_corpus(sys.argv[2], sys.argv[3], {SPEC}, "cpu", checkpoint_seconds=0)
    log.write("done\\n")
""").replace("{SPEC}", repr(SPEC))


def _corpus(tmp_path, n=24):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        dur = float(rng.uniform(0.2, 0.8))
        t = np.arange(int(dur * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + rng.normal(0, 0.02, t.size)
        path = tmp_path / "wav" / f"a{i:02d}.wav"
        write_audio(path, x.astype(np.float32))
        rows.append({"utt_id": f"a{i:02d}", "audio_path": str(path), "speaker": f"s{i % 2}",
                     "label": "neu", "duration": len(t) / 16000})
    write_manifest(normalise(pd.DataFrame(rows), "c"), tmp_path / "m.csv")
    return tmp_path / "m.csv"


def _run(tmp_path, manifest, out, progress, delay):
    env = {**os.environ, "CHUNK_BYTES": str(CHUNK_BYTES), "PROGRESS": str(progress), "DELAY": str(delay)}
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.Popen([sys.executable, str(driver), str(REPO), str(manifest), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(progress, kind):
    if not progress.exists():
        return []
    return [ln.split(" ", 1)[1] for ln in progress.read_text().splitlines() if ln.startswith(kind + " ")]


def test_sigkilled_extraction_resumes_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    manifest = _corpus(tmp_path)
    out = tmp_path / "features" / "lld.zarr"

    child = _run(tmp_path, manifest, out, tmp_path / "run1.log", delay=0.4)
    deadline = time.time() + 90
    while len(_lines(tmp_path / "run1.log", "checkpoint")) < 3:
        assert child.poll() is None, child.communicate()
        assert time.time() < deadline, "no checkpoints within 90 s"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not out.exists()
    state = json.loads((partial_path(out) / "_partial.json").read_text())
    done_ids = state["ids"]
    assert state["batches_done"] >= 3 and len(done_ids) >= 6
    stale = out.with_name(f".{out.name}.tmp-99999")  # an older writer's leftover
    (stale / "frames").mkdir(parents=True)

    child = _run(tmp_path, manifest, out, tmp_path / "run2.log", delay=0)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert f"resuming {partial_path(out)} after {state['batches_done']} batches" in err
    redone = _lines(tmp_path / "run2.log", "extract")
    every = pd.read_csv(manifest)["utt_id"].tolist()
    assert not set(redone) & set(done_ids), "finished batches were extracted again"
    assert sorted(redone + done_ids) == sorted(every)
    assert sorted(p.name for p in out.parent.iterdir()) == ["lld.zarr"]  # no partial, lock or tmp

    # The same extraction, uninterrupted, in this process.
    from ser_pipeline.features.runner import extract_corpus

    monkeypatch.setattr(store_mod, "CHUNK_BYTES", CHUNK_BYTES)
    extract_corpus(manifest, tmp_path / "ref.zarr", SPEC, "cpu")
    ref, got = FeatureStore(tmp_path / "ref.zarr"), FeatureStore(out)
    assert got.arrays["frames"].n_chunks > 5
    assert got.content_digest == ref.content_digest
    assert got.utt_ids == ref.utt_ids and np.array_equal(got.offsets, ref.offsets)
    for a, b in zip(got.load(), ref.load()):
        np.testing.assert_array_equal(a, b)
    skip = {"manifest"}
    assert {k: v for k, v in got.attrs.items() if k not in skip} == \
        {k: v for k, v in ref.attrs.items() if k not in skip}


def test_changed_manifest_or_config_starts_afresh(tmp_path, monkeypatch, capfd):
    from ser_pipeline.features import runner

    manifest = _corpus(tmp_path, n=10)
    out = tmp_path / "lld.zarr"
    monkeypatch.setattr(store_mod, "CHUNK_BYTES", CHUNK_BYTES)
    real_end = store_mod.StoreWriter.end_batch

    def stop_after_two(self, k, force=False):
        real_end(self, k, force)
        if k == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(store_mod.StoreWriter, "end_batch", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        runner.extract_corpus(manifest, out, SPEC, "cpu", checkpoint_seconds=0)
    assert (partial_path(out) / "_partial.json").exists()
    monkeypatch.setattr(store_mod.StoreWriter, "end_batch", real_end)

    other = {**SPEC, "params": {"step": 0.02}}
    stats = runner.extract_corpus(manifest, out, other, "cpu", checkpoint_seconds=0)
    assert stats["resumed_after_batches"] == 0
    assert "different config" in capfd.readouterr().err
    ref = runner.extract_corpus(manifest, tmp_path / "ref.zarr", other, "cpu")
    assert FeatureStore(out).content_digest == FeatureStore(tmp_path / "ref.zarr").content_digest
    assert ref["resumed_after_batches"] == 0

    # A regenerated audio file (same path, new content) also invalidates a partial store.
    monkeypatch.setattr(store_mod.StoreWriter, "end_batch", stop_after_two)
    out2 = tmp_path / "lld2.zarr"
    with pytest.raises(KeyboardInterrupt):
        runner.extract_corpus(manifest, out2, SPEC, "cpu", checkpoint_seconds=0)
    monkeypatch.setattr(store_mod.StoreWriter, "end_batch", real_end)
    wav = Path(pd.read_csv(manifest)["audio_path"][0])
    x = np.random.default_rng(5).normal(0, 0.1, 8000).astype(np.float32)
    time.sleep(0.01)
    write_audio(wav, x)
    stats = runner.extract_corpus(manifest, out2, SPEC, "cpu", checkpoint_seconds=0)
    assert stats["resumed_after_batches"] == 0

import json
import os

import numpy as np
import pytest

import ser_pipeline.store as store_mod
from ser_pipeline.errors import SerError, StoreError
from ser_pipeline.store import FeatureStore, is_complete, partial_path, write_store

DIM = 8
SMALL_CHUNK = DIM * 4 * 64  # 64 rows per chunk: a few dozen utterances span several chunks


def _utts(n=40, seed=0, dim=DIM, max_len=50):
    rng = np.random.default_rng(seed)
    return {f"u{i:03d}": rng.normal(size=(int(rng.integers(0, max_len)), dim)).astype(np.float32)
            for i in range(n)}


def _write(path, utts, tokens=False, **kw):
    kw.setdefault("chunk_bytes", SMALL_CHUNK)
    with write_store(path, DIM, {"extractor": "x", "config": {"a": 1}}, with_tokens=tokens, **kw) as w:
        for u, x in utts.items():
            w.add(u, x, [f"{u}-{j}" for j in range(len(x))] if tokens else None)
    return path


def test_round_trip_with_offsets_tokens_and_empty_utterances(tmp_path):
    utts = _utts()
    utts["u005"] = np.zeros((0, DIM), np.float32)
    st = FeatureStore(_write(tmp_path / "s.zarr", utts, tokens=True))
    assert st.attrs["config"] == {"a": 1} and st.attrs["complete"] and st.attrs["n_utterances"] == 40
    assert st.arrays["frames"].n_chunks > 5
    order = ["u007", "u003", "u039", "u005"]
    for u, x in zip(order, st.load(order)):
        np.testing.assert_array_equal(x, utts[u])
    assert [len(x) for x in st.load()] == [len(x) for x in utts.values()]
    assert st.load_tokens(["u003"])[0] == [f"u003-{j}" for j in range(len(utts["u003"]))]
    with pytest.raises(SerError, match="missing"):
        st.load(["nope"])
    st.verify()


def test_zarr_reads_the_same_values_for_every_codec(tmp_path):
    import zarr

    utts = _utts(20)
    digests = set()
    for comp in (None, "lz4", "zstd-3"):
        path = _write(tmp_path / f"s-{comp}.zarr", utts, tokens=True, compressor=comp)
        g = zarr.open_group(str(path), mode="r")
        np.testing.assert_array_equal(g["frames"][:], np.concatenate(list(utts.values())))
        assert list(g["utt_ids"][:]) == list(utts)
        assert list(g["tokens"][:]) == [f"{u}-{j}" for u, x in utts.items() for j in range(len(x))]
        st = FeatureStore(path)
        for u, x in zip(utts, st.load()):
            np.testing.assert_array_equal(x, utts[u])
        digests.add(st.content_digest)
    assert len(digests) == 3  # the digest covers the encoded bytes and codecs


def test_float16_store_loads_as_float32(tmp_path):
    utts = _utts(10)
    with write_store(tmp_path / "h.zarr", DIM, {}, dtype="float16", chunk_bytes=SMALL_CHUNK) as w:
        for u, x in utts.items():
            w.add(u, x)
    st = FeatureStore(tmp_path / "h.zarr")
    assert st.attrs["dtype"] == "float16"
    x = st.load(["u002"])[0]
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, utts["u002"].astype(np.float16).astype(np.float32))


def test_content_digest_is_deterministic_and_changes_with_content(tmp_path):
    utts = _utts()
    a = FeatureStore(_write(tmp_path / "a.zarr", utts)).content_digest
    b = FeatureStore(_write(tmp_path / "b.zarr", utts)).content_digest
    utts["u010"] = utts["u010"] + 1e-3
    c = FeatureStore(_write(tmp_path / "c.zarr", utts)).content_digest
    assert a == b != c and a.startswith("sha256:")


def test_an_all_zero_chunk_is_stored_and_not_mistaken_for_a_missing_one(tmp_path):
    # zarr skips writing chunks equal to the fill value; ours are always written, so a missing
    # file can be told from genuine zeros.
    utts = {f"z{i}": np.zeros((40, DIM), np.float32) for i in range(5)}
    st = FeatureStore(_write(tmp_path / "z.zarr", utts))
    assert all(st.arrays["frames"].file(i).exists() for i in range(st.arrays["frames"].n_chunks))
    assert all((x == 0).all() for x in st.load())


def test_load_reads_only_the_chunks_it_needs(tmp_path):
    utts = _utts()
    st = FeatureStore(_write(tmp_path / "s.zarr", utts))
    arr = st.arrays["frames"]
    last = arr.n_chunks - 1
    arr.file(last).unlink()
    first_ids = [u for i, u in enumerate(st.utt_ids) if st.offsets[i + 1] <= arr.chunk_rows]
    assert first_ids and len(st.load(first_ids)) == len(first_ids)  # chunk 0 only: fine
    with pytest.raises(StoreError, match=f"chunk {last}"):
        st.load([st.utt_ids[-1]])


def test_small_selections_are_copied_out_of_the_chunk_buffer(tmp_path):
    st = FeatureStore(_write(tmp_path / "s.zarr", _utts()))
    one = st.load(["u020"])[0]
    assert one.base is None or one.base.size == one.size  # not a view into a whole-chunk buffer


def test_interrupted_write_never_looks_complete_and_leaves_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError):
        with write_store(path, 4, {"extractor": "x"}) as w:
            w.add("a", np.zeros((3, 4), np.float32))
            raise RuntimeError("killed")
    assert not path.exists()
    assert not is_complete(path)
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_are_rejected_with_the_utterance_named(tmp_path):
    with pytest.raises(SerError, match="u1"):
        with write_store(tmp_path / "s.zarr", 4, {}) as w:
            w.add("u1", np.full((3, 4), np.nan, np.float32))
    with pytest.raises(SerError, match="expected"):
        with write_store(tmp_path / "s.zarr", 4, {}) as w:
            w.add("u2", np.zeros((3, 5), np.float32))
    with pytest.raises(SerError, match="u3: added twice"):
        with write_store(tmp_path / "s.zarr", 4, {}) as w:
            w.add("u3", np.zeros((3, 4), np.float32))
            w.add("u3", np.zeros((3, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_reader_refuses_a_store_without_completion_flag(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "half.zarr"), mode="w").attrs["extractor"] = "x"
    with pytest.raises(StoreError, match="incomplete"):
        FeatureStore(tmp_path / "half.zarr")


def test_reader_refuses_a_store_of_the_old_format_without_checksums(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "old.zarr"), mode="w").attrs.update({"complete": True, "dim": 4})
    with pytest.raises(StoreError, match=r"no chunk checksums.*delete .*old.zarr and rerun snakemake"):
        FeatureStore(tmp_path / "old.zarr")


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(tmp_path / "nothing.zarr")


# ---- resumable writes -------------------------------------------------------------------------

def _batched_write(path, utts, key, batch=4, stop_after=None, tokens=False, checkpoint_seconds=0, force_at=()):
    names = list(utts)
    batches = [names[i:i + batch] for i in range(0, len(names), batch)]
    done = []
    with write_store(path, DIM, {"extractor": "x"}, with_tokens=tokens, resume_key=key,
                     chunk_bytes=SMALL_CHUNK, checkpoint_seconds=checkpoint_seconds) as w:
        start = w.resumed_from
        for k in range(start, len(batches)):
            for u in batches[k]:
                w.add(u, utts[u], [f"{u}-{j}" for j in range(len(utts[u]))] if tokens else None)
            done.append(k)
            w.end_batch(k + 1, force=k + 1 in force_at)
            if stop_after is not None and k + 1 == stop_after:
                raise KeyboardInterrupt  # an interruption that is not the input's fault
    return start, done


@pytest.mark.parametrize("tokens", [False, True])
def test_resumed_write_equals_an_uninterrupted_one(tmp_path, tokens):
    utts = _utts(40, max_len=60)
    _batched_write(tmp_path / "ref.zarr", utts, "k", tokens=tokens)
    path = tmp_path / "s.zarr"
    with pytest.raises(KeyboardInterrupt):
        _batched_write(path, utts, "k", stop_after=6, tokens=tokens)
    state = json.loads((partial_path(path) / "_partial.json").read_text())
    assert state["batches_done"] == 6 and not path.exists()
    start, done = _batched_write(path, utts, "k", tokens=tokens)
    assert start == 6 and done == list(range(6, 10))
    ref, st = FeatureStore(tmp_path / "ref.zarr"), FeatureStore(path)
    assert st.content_digest == ref.content_digest
    assert st.utt_ids == ref.utt_ids and (st.offsets == ref.offsets).all()
    for a, b in zip(st.load(), ref.load()):
        np.testing.assert_array_equal(a, b)
    if tokens:
        assert st.load_tokens() == ref.load_tokens()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.zarr", "s.zarr"]


def test_frames_written_after_the_last_checkpoint_are_discarded(tmp_path):
    utts = _utts(40, max_len=60)
    _batched_write(tmp_path / "ref.zarr", utts, "k")
    path = tmp_path / "s.zarr"
    with pytest.raises(KeyboardInterrupt):  # one checkpoint after batch 2, killed after batch 8
        _batched_write(path, utts, "k", stop_after=8, checkpoint_seconds=1e9, force_at={2})
    state = json.loads((partial_path(path) / "_partial.json").read_text())
    assert state["batches_done"] == 2
    on_disk = list((partial_path(path) / "frames" / "c").iterdir())
    assert len(on_disk) > len(state["crcs"]["frames"]) + 1  # chunks the checkpoint does not cover
    start, _ = _batched_write(path, utts, "k")
    assert start == 2
    assert FeatureStore(path).content_digest == FeatureStore(tmp_path / "ref.zarr").content_digest


def test_a_partial_store_with_another_key_or_a_damaged_chunk_starts_afresh(tmp_path, capfd):
    utts = _utts(40)
    _batched_write(tmp_path / "ref.zarr", utts, "k")
    path = tmp_path / "s.zarr"
    with pytest.raises(KeyboardInterrupt):
        _batched_write(path, utts, "other config", stop_after=5)
    start, _ = _batched_write(path, utts, "k")
    assert start == 0 and "different config" in capfd.readouterr().err
    assert FeatureStore(path).content_digest == FeatureStore(tmp_path / "ref.zarr").content_digest

    path2 = tmp_path / "t.zarr"
    with pytest.raises(KeyboardInterrupt):
        _batched_write(path2, utts, "k", stop_after=7)
    f = store_mod._chunk_file(partial_path(path2), "frames", 2, 0)
    f.write_bytes(b"\0" * 16 + f.read_bytes()[16:])
    start, _ = _batched_write(path2, utts, "k")
    assert start == 0 and "does not match its checksum" in capfd.readouterr().err
    assert FeatureStore(path2).content_digest == FeatureStore(tmp_path / "ref.zarr").content_digest


def test_input_errors_remove_the_partial_store(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(SerError):
        with write_store(path, DIM, {}, resume_key="k", checkpoint_seconds=0) as w:
            w.add("a", np.zeros((3, DIM), np.float32))
            w.end_batch(1)
            w.add("b", np.full((3, DIM), np.inf, np.float32))
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_siblings_are_removed_and_a_second_writer_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    stale = tmp_path / ".s.zarr.tmp-99999"
    (stale / "frames").mkdir(parents=True)
    (tmp_path / ".other.zarr.tmp-1").mkdir()  # another output's: not ours to touch
    with write_store(path, DIM, {}) as w:
        assert not stale.exists()
        with pytest.raises(SerError, match="another process is writing"):
            with write_store(path, DIM, {}):
                pass
        w.add("a", np.ones((2, DIM), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.zarr.tmp-1", "s.zarr"]
    assert FeatureStore(path).load(["a"])[0].sum() == 2 * DIM


def test_a_non_resumable_partial_left_by_a_killed_writer_is_replaced(tmp_path):
    path = tmp_path / "s.zarr"
    partial = partial_path(path)
    (partial / "frames" / "c" / "0").mkdir(parents=True)
    (partial / "frames" / "c" / "0" / "0").write_bytes(b"junk")
    _write(path, {"a": np.ones((3, DIM), np.float32)})
    assert not partial.exists() and FeatureStore(path).load(["a"])[0].shape == (3, DIM)
    assert os.listdir(tmp_path) == ["s.zarr"]

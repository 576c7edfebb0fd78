"""Corruption drill: damage a small store in each way users met and check each one fails loudly,
naming the store, the array and chunk (or file) at fault, and how to rebuild it.

Most damage is caught by the chunk checksums. The "consistent" variants also rewrite the
checksums and the content digest, as a buggy writer would, to show the semantic checks
(finite values, offsets, unique ids, shapes) stand on their own.
"""
import json
import re

import numpy as np
import pytest

import ser_pipeline.store as S
from ser_pipeline.errors import SerError, StoreError
from ser_pipeline.store import FeatureStore, write_store

DIM = 6
ROWS = 32


@pytest.fixture(params=[None, "zstd-3"], ids=["raw", "zstd"])
def store(tmp_path, request):
    rng = np.random.default_rng(1)
    path = tmp_path / "feat.zarr"
    with write_store(path, DIM, {"extractor": "x"}, chunk_bytes=ROWS * DIM * 4, compressor=request.param) as w:
        for i in range(30):
            w.add(f"u{i:02d}", rng.normal(size=(int(rng.integers(5, 20)), DIM)).astype(np.float32))
    st = FeatureStore(path)
    assert st.arrays["frames"].n_chunks >= 8
    return path


def _fails(path, match, array=None, chunk=None, action=lambda st: st.load()):
    """Open + load must raise a StoreError naming the store, the array/chunk, the rebuild hint."""
    with pytest.raises(StoreError) as ei:
        action(FeatureStore(path))
    msg = str(ei.value)
    assert isinstance(ei.value, SerError)
    assert str(path) in msg, msg
    assert re.search(match, msg), msg
    assert f"delete {path} and rerun snakemake (it will re-extract)" in msg, msg
    if array is not None:
        assert f"array '{array}'" in msg, msg
    if chunk is not None:
        assert f"chunk {chunk} " in msg and str(path / array / "c" / str(chunk)) in msg, msg
    return msg


def _frames_file(path, i):
    return path / "frames" / "c" / str(i) / "0"


def _attrs(path):
    return json.loads((path / "zarr.json").read_text())


def _set_attrs(path, meta):
    (path / "zarr.json").write_text(json.dumps(meta))


def _rewrite_consistently(path, array, chunk, data: bytes):
    """Replace a chunk AND update its checksum and the digest, as a buggy writer would."""
    f = S._chunk_file(path, array, 2 if array == "frames" else 1, chunk)
    f.write_bytes(data)
    meta = _attrs(path)
    meta["attributes"]["checksums"][array][chunk] = S._crc(data)
    sums = meta["attributes"]["checksums"]
    meta["attributes"]["content_digest"] = S._content_digest(
        {n: S._array_summary(json.loads((path / n / "zarr.json").read_text()), sums[n])
         for n in ("frames", "offsets", "utt_ids")})
    _set_attrs(path, meta)


def _overwrite(f, at, data: bytes):
    b = bytearray(f.read_bytes())
    b[at:at + len(data)] = data
    f.write_bytes(bytes(b))


def test_intact_store_loads(store):
    FeatureStore(store).verify()
    assert len(FeatureStore(store).load()) == 30


def test_nan_bytes_inside_a_frames_chunk(store):
    _overwrite(_frames_file(store, 3), 40, np.full(4, np.nan, np.float32).tobytes())
    _fails(store, "checksum", "frames", 3)


def test_inf_bytes_inside_a_frames_chunk(store):
    _overwrite(_frames_file(store, 2), 8, np.full(2, np.inf, np.float32).tobytes())
    _fails(store, "checksum", "frames", 2)


def test_different_finite_values_inside_a_frames_chunk(store):
    f = _frames_file(store, 1)
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0x01  # one flipped bit
    f.write_bytes(bytes(b))
    _fails(store, "checksum", "frames", 1)


def test_nan_with_a_matching_checksum_is_still_caught(store):
    raw = S._chunk_file(store, "frames", 2, 4)
    arr = FeatureStore(store).arrays["frames"]
    block = arr.read(4, np.empty((arr.chunk_rows, DIM), np.float32)).copy()
    block[3, 2] = np.nan
    data = S._encode_numeric(block, S._zarr_compressors(
        None if arr.compressor is None else "zstd-3", np.float32))
    _rewrite_consistently(store, "frames", 4, data)
    assert raw.exists()
    msg = _fails(store, r"non-finite values .* at frame row \d+ \(utterance u\d\d\)", "frames", 4)
    assert "NaN" in msg


def test_deleted_chunk(store):
    _frames_file(store, 5).unlink()
    _fails(store, "missing", "frames", 5)


def test_truncated_chunk(store):
    f = _frames_file(store, 6)
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    _fails(store, "truncated|checksum", "frames", 6)


def test_damage_is_found_by_verify_even_where_a_load_does_not_look(store):
    _frames_file(store, 7).unlink()
    _fails(store, "missing", "frames", 7, action=lambda st: st.verify())


def test_offsets_overwritten(store):
    f = S._chunk_file(store, "offsets", 1, 0)
    _overwrite(f, 8 * 3, np.array([1], "<i8").tobytes())
    _fails(store, "checksum", "offsets", 0)


def test_offsets_not_monotone_with_a_matching_checksum(store):
    off = FeatureStore(store).offsets.copy()
    off[10], off[11] = off[11], off[10]
    _rewrite_consistently(store, "offsets", 0, off.astype("<i8").tobytes())
    _fails(store, "offsets must rise.*falls after utterance", "offsets", 0)


def test_offsets_wrong_last_value_with_a_matching_checksum(store):
    off = FeatureStore(store).offsets.copy()
    off[-1] -= 3
    _rewrite_consistently(store, "offsets", 0, off.astype("<i8").tobytes())
    _fails(store, r"offsets must rise from 0 to \d+ .*last", "offsets", 0)


def test_wrong_shape_in_the_array_metadata(store):
    meta_file = store / "frames" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["shape"][0] += 10
    meta_file.write_text(json.dumps(meta))
    msg = _fails(store, "metadata says shape", "frames")
    assert str(meta_file) in msg


def test_wrong_shape_in_the_store_attributes(store):
    meta = _attrs(store)
    meta["attributes"]["n_frames"] -= 1
    _set_attrs(store, meta)
    _fails(store, "shape", "frames")


def test_wrong_dtype_in_the_array_metadata(store):
    meta_file = store / "frames" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["data_type"] = "float16"
    meta_file.write_text(json.dumps(meta))
    _fails(store, "float16", "frames")


def test_edited_checksum_list_does_not_match_the_digest(store):
    meta = _attrs(store)
    meta["attributes"]["checksums"]["frames"][0] ^= 1
    _set_attrs(store, meta)
    _fails(store, "content digest")


def test_missing_complete_flag(store):
    meta = _attrs(store)
    del meta["attributes"]["complete"]
    _set_attrs(store, meta)
    _fails(store, "incomplete")


def test_duplicated_utt_id(store):
    ids = FeatureStore(store).utt_ids
    ids[7] = ids[3]
    data = S._encode_strings(ids)
    f = S._chunk_file(store, "utt_ids", 1, 0)
    good = f.read_bytes()
    f.write_bytes(data)  # plain damage: checksum
    _fails(store, "checksum", "utt_ids", 0)
    f.write_bytes(good)
    _rewrite_consistently(store, "utt_ids", 0, data)  # writer bug: uniqueness check
    _fails(store, r"not unique, e.g. \['u03'\]", "utt_ids", 0)


def test_garbage_group_metadata(store):
    (store / "zarr.json").write_text("{not json")
    _fails(store, "zarr.json cannot be read")

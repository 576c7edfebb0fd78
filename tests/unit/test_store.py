import numpy as np
import pytest

from ser_pipeline.errors import SerError
from ser_pipeline.store import FeatureStore, is_complete, write_store


def test_round_trip_with_offsets_and_tokens(tmp_path):
    rng = np.random.default_rng(0)
    utts = {f"u{i}": rng.normal(size=(rng.integers(1, 50), 8)).astype(np.float32) for i in range(20)}
    path = tmp_path / "s.zarr"
    with write_store(path, 8, {"extractor": "x", "config": {"a": 1}}, with_tokens=True) as w:
        w.flush_bytes = 500  # force several appends
        for u, x in utts.items():
            w.add(u, x, [f"t{j}" for j in range(len(x))])
    st = FeatureStore(path)
    assert st.attrs["config"] == {"a": 1} and st.attrs["complete"] and st.attrs["n_utterances"] == 20
    order = ["u7", "u3", "u19"]
    for u, x in zip(order, st.load(order)):
        np.testing.assert_array_equal(x, utts[u])
    assert st.load_tokens(["u3"])[0] == [f"t{j}" for j in range(len(utts["u3"]))]
    with pytest.raises(SerError, match="missing"):
        st.load(["nope"])


def test_interrupted_write_never_looks_complete(tmp_path):
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


def test_reader_refuses_a_store_without_completion_flag(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "half.zarr"), mode="w").attrs["extractor"] = "x"
    with pytest.raises(SerError, match="incomplete"):
        FeatureStore(tmp_path / "half.zarr")

"""The training job on synthetic features: protocol bookkeeping, data sizes, segment mode."""
import numpy as np
import pandas as pd
import pytest

from ser_pipeline.errors import ConfigError
from ser_pipeline.manifest import normalise, write_manifest
from ser_pipeline.protocols.folds import write_fold_file
from ser_pipeline.store import write_store
from ser_pipeline.training.loop import run_training

CLASSES = ["neu", "hap", "sad", "ang"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    rows, feats = [], {}
    for s in (1, 2, 3):
        for g in "FM":
            for ci, lab in enumerate(CLASSES):
                for k in range(6):
                    u = f"Ses0{s}{g}_{lab}_{k}"
                    rows.append({"utt_id": u, "audio_path": "/dev/null", "speaker": f"Ses0{s}{g}",
                                 "session": f"Ses0{s}", "label": lab, "mode": "improvised"})
                    t = int(rng.integers(120, 420))
                    x = rng.normal(size=(t, 6)).astype(np.float32)
                    x[:, ci] += 1.5  # a learnable class signal
                    feats[u] = x
    df = normalise(pd.DataFrame(rows), "synth")
    write_manifest(df, tmp / "manifest.csv")
    with write_store(tmp / "f.zarr", 6, {"extractor": "synthetic", "frame_rate": 100.0}) as w:
        for u, x in feats.items():
            w.add(u, x)
    labels = {"classes": CLASSES}
    write_fold_file(df, {"scheme": "leave_one_session_out", "labels": labels}, tmp / "loso.json", "synth", "loso")
    write_fold_file(df, {"scheme": "leave_one_speaker_out", "labels": labels}, tmp / "lospk.json", "synth", "lospk")
    return tmp


def _spec(tmp, arch, fold_file="loso.json", size="full", train=None, hparams=None):
    return {"model_name": f"m_{arch}", "model": {"arch": arch, "inputs": {"audio": "f"}, "hparams": hparams or {},
                                                 "train": {"epochs": 15, "lr": 3e-3, **(train or {})}},
            "corpus": "synth", "protocol": fold_file[:-5], "fold": "f01", "size": size, "seed": 0,
            "device": "cpu", "manifest": str(tmp / "manifest.csv"),
            "fold_file": str(tmp / fold_file), "stores": {"audio": str(tmp / "f.zarr")}}


def test_mean_pool_learns_and_records_protocol(corpus):
    res = run_training(_spec(corpus, "mean_pool"))
    assert res["test_session"] == "Ses01" and res["n_test"] == 48 and res["n_train"] == 96
    assert res["epoch_selection"] == "fixed epochs, no early stopping" and res["selected_epoch"] == 15
    assert res["metrics"]["UA"] > 0.6, res["metrics"]
    assert len(res["history"]) == 15


def test_data_size_draws_exact_counts_per_class(corpus):
    res = run_training(_spec(corpus, "mean_pool", size=3, train={"epochs": 1}))
    assert res["n_train_per_class"] == {c: 3 for c in CLASSES}
    assert res["n_test"] == 48, "the test part is never subsampled"


def test_segments_mode_with_validation_selection(corpus):
    res = run_training(_spec(corpus, "ma_crnn", fold_file="lospk.json",
                             train={"epochs": 2, "input_mode": "segments", "segment_seconds": 1.0,
                                    "select_on_val": True, "class_weights": True},
                             hparams={"conv_channels": [4, 4], "kernel_sizes": [[3, 3], [3, 3]],
                                      "pool_sizes": [[1, 2], [2, 3]], "rnn_hidden": 8, "fc_units": 8}))
    assert res["n_val"] == 24 and res["n_test"] == 24
    assert res["epoch_selection"] == "best validation UA" and 1 <= res["selected_epoch"] <= 2
    assert all("val_UA" in h for h in res["history"])


def test_select_on_val_without_validation_part_is_an_error(corpus):
    with pytest.raises(ConfigError, match="validation"):
        run_training(_spec(corpus, "mean_pool", train={"epochs": 1, "select_on_val": True}))


def test_unknown_train_key_is_named(corpus):
    with pytest.raises(ConfigError, match="epocs"):
        run_training(_spec(corpus, "mean_pool", train={"epocs": 1}))


def test_average_frames_keeps_the_tail():
    from ser_pipeline.training.fold_data import average_frames

    a = np.arange(10, dtype=np.float32).reshape(5, 2)
    out = average_frames(a, 2)
    np.testing.assert_allclose(out, [[1, 2], [5, 6], [8, 9]])
    assert average_frames(a, 1) is a


def test_seconds_count_pooled_frames(corpus, monkeypatch):
    """segment_seconds (and crops) are seconds of audio also when frames are averaged."""
    from ser_pipeline.training import neural

    seen = []
    real = neural._segment
    monkeypatch.setattr(neural, "_segment", lambda part, frames: seen.append(frames) or real(part, frames))
    run_training(_spec(corpus, "ma_crnn", fold_file="lospk.json",
                       train={"epochs": 1, "input_mode": "segments", "segment_seconds": 1.0,
                              "pool_frames": {"audio": 2}},
                       hparams={"conv_channels": [4], "kernel_sizes": [[3, 3]], "pool_sizes": [[1, 2]],
                                "rnn_hidden": 8, "fc_units": 8}))
    assert seen and set(seen) == {50}, "1 s at 100 frames/s averaged in pairs is 50 frames"

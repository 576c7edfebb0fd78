"""The CLI turns user mistakes into one clear line (exit 2), never a traceback."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from click.testing import CliRunner

from ser_pipeline.audio import write_audio
from ser_pipeline.cli import main
from ser_pipeline.manifest import normalise, write_manifest

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_every_stage():
    out = CliRunner().invoke(main, ["--help"]).output
    for stage in ("demo-corpus", "prepare", "folds", "extract", "train", "table", "plot", "summary"):
        assert stage in out


def test_bad_config_key_is_named(tmp_path):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["models"]["ma_variable"]["train"]["lr"] = -1
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(main, ["check-config", str(tmp_path / "c.yaml")])
    assert res.exit_code == 2
    assert "models.ma_variable.train.lr" in res.output


def test_corrupt_audio_stops_extraction_naming_the_file_and_leaves_no_store(tmp_path):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    write_audio(good, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    bad.write_bytes(b"not a wav at all")
    df = normalise(pd.DataFrame([
        {"utt_id": "a", "audio_path": str(good), "speaker": "s1", "label": "neu", "duration": 1.0},
        {"utt_id": "b", "audio_path": str(bad), "speaker": "s1", "label": "neu", "duration": 1.0},
    ]), "c")
    write_manifest(df, tmp_path / "m.csv")
    spec = json.dumps({"feature": {"extractor": "lld", "params": {}}})
    res = CliRunner().invoke(main, ["extract", "--manifest", str(tmp_path / "m.csv"), "--spec", spec,
                                    "--out", str(tmp_path / "f.zarr"), "--device", "cpu"])
    assert res.exit_code == 2, res.output
    assert str(bad) in res.output and "cannot be read" in res.output
    assert not (tmp_path / "f.zarr").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_manifest_with_missing_label_is_refused(tmp_path):
    import pytest

    from ser_pipeline.errors import CorpusError

    with pytest.raises(CorpusError, match="label"):
        normalise(pd.DataFrame([{"utt_id": "a", "audio_path": "x.wav", "speaker": "s", "label": ""}]), "c")

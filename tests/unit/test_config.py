import copy
from pathlib import Path

import pytest
import yaml

from ser_pipeline import config as sp
from ser_pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cfg():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_is_valid_and_defaults_are_filled(cfg):
    out = sp.validate(cfg)
    assert out["results"] == "results"
    assert out["models"]["mean_pool_lld"]["hparams"] == {}


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["models"]["mean_pool_lld"].update(arch="nope"), "models.mean_pool_lld.arch"),
    (lambda c: c["models"]["mean_pool_lld"]["train"].update(epochs=0), "models.mean_pool_lld.train.epochs"),
    (lambda c: c["models"]["mean_pool_lld"]["train"].update(epocs=3), "models.mean_pool_lld.train"),
    (lambda c: c["features"]["lld"].update(extractor="mfcc"), "features.lld.extractor"),
    (lambda c: c.update(device="tpu"), "device"),
    (lambda c: c["experiments"]["boigne_table1"].update(sizes=[0]), "experiments.boigne_table1.sizes.0"),
])
def test_schema_errors_name_the_key(cfg, mutate, key):
    mutate(cfg)
    with pytest.raises(ConfigError, match=f"'{key}'"):
        sp.validate(cfg)


def test_cross_references_are_checked(cfg):
    bad = copy.deepcopy(cfg)
    bad["models"]["mean_pool_lld"]["inputs"]["audio"] = "mfcc"
    with pytest.raises(ConfigError, match="models.mean_pool_lld.inputs.audio"):
        sp.validate(bad)
    bad = copy.deepcopy(cfg)
    bad["experiments"]["boigne_table1"]["models"]["ghost"] = "x"
    with pytest.raises(ConfigError, match="ghost"):
        sp.validate(bad)
    bad = copy.deepcopy(cfg)
    bad["corpora"]["mine"] = {"loader": "csv", "path": "x.csv"}
    with pytest.raises(ConfigError, match="corpora.mine.n_sessions"):
        sp.validate(bad)


def test_fold_names_follow_the_scheme(cfg):
    cfg = sp.validate(cfg)
    assert sp.fold_names(cfg, "demo", "loso_session") == ["f01", "f02", "f03", "f04", "f05"]
    assert len(sp.fold_names(cfg, "demo", "loso_speaker_improvised")) == 5  # swap_validation: false
    cfg["protocols"]["loso_speaker_improvised"]["swap_validation"] = True
    assert len(sp.fold_names(cfg, "demo", "loso_speaker_improvised")) == 10


def test_model_digest_changes_only_for_the_edited_model(cfg):
    cfg = sp.validate(cfg)
    before = {m: sp.model_digest(cfg, m) for m in cfg["models"]}
    cfg["models"]["mlp_pool_w2v"]["hparams"]["units"] = 64
    after = {m: sp.model_digest(cfg, m) for m in cfg["models"]}
    assert [m for m in cfg["models"] if before[m] != after[m]] == ["mlp_pool_w2v"]


def test_source_digest_tracks_file_content(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    f = tmp_path / "models" / "pooling.py"
    f.write_text("a = 1\n")
    monkeypatch.setattr(sp, "PACKAGE", tmp_path)
    d1 = sp.source_digest(["models/pooling.py"])
    f.write_text("a = 2\n")
    assert sp.source_digest(["models/pooling.py"]) != d1


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml"):
        sp.load_config(tmp_path / "nothere.yaml")


def test_gpu_requests_follow_the_device_setting(cfg, monkeypatch):
    cfg = sp.validate(cfg)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cfg["device"] = "cuda"
    assert sp.model_uses_gpu(cfg, "ma_variable") == 1 and sp.feature_uses_gpu(cfg, "wav2vec") == 1
    assert sp.feature_uses_gpu(cfg, "egemaps") == 0, "egemaps runs on the CPU"
    assert sp.model_uses_gpu(cfg, "mean_pool_lld") == 0, "not flagged gpu in its train section"
    cfg["device"] = "cpu"
    assert sp.model_uses_gpu(cfg, "ma_variable") == 0 and sp.feature_uses_gpu(cfg, "wav2vec") == 0

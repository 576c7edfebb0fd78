import copy
import json
from pathlib import Path

import pytest
import yaml

from ser_pipeline import config as sp
from ser_pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cfg():
    # a JSON round trip unties YAML anchors, so mutating one model leaves the others alone
    return json.loads(json.dumps(yaml.safe_load((REPO / "config.yaml").read_text())))


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
    bad["corpora"]["mine"] = {"loader": "csv", "path": "x.csv", "labels": {"classes": ["a", "b"]}}
    bad["experiments"]["boigne_table1"]["corpus"] = "mine"
    with pytest.raises(ConfigError, match="corpora.mine.groups.session"):
        sp.validate(bad)


def test_fold_names_follow_the_scheme(cfg):
    cfg = sp.validate(cfg)
    assert sp.fold_names(cfg, "demo", "loso_session") == ["f01", "f02", "f03", "f04", "f05"]
    assert len(sp.fold_names(cfg, "demo", "loso_speaker_improvised")) == 5  # swap_validation: false
    cfg["protocols"]["loso_speaker_improvised"]["swap_validation"] = True
    assert len(sp.fold_names(cfg, "demo", "loso_speaker_improvised")) == 10


def _train_digests(cfg):
    exp = cfg["experiments"]["boigne_table1"]
    return {m: sp.train_spec(cfg, exp["corpus"], exp["protocol"], m, 24, 0, "f01")["digest"] for m in cfg["models"]}


def test_train_digest_changes_only_for_the_edited_model(cfg):
    cfg = sp.validate(cfg)
    before = _train_digests(cfg)
    cfg["models"]["mlp_pool_w2v"]["hparams"]["units"] = 64
    after = _train_digests(cfg)
    assert [m for m in cfg["models"] if before[m] != after[m]] == ["mlp_pool_w2v"]


def test_duplicate_yaml_keys_are_refused_with_the_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("results: a\nresults: b\n")
    with pytest.raises(ConfigError, match=r"c.yaml: duplicate key 'results' at line 2"):
        sp.read_yaml(f)


def test_unknown_paper_key_and_validation_needs_are_found_before_any_job(cfg):
    bad = copy.deepcopy(cfg)
    bad["experiments"]["boigne_table1"]["paper"] = "boigne2021"
    with pytest.raises(ConfigError, match="experiments.boigne_table1.paper"):
        sp.validate(bad)
    bad = copy.deepcopy(cfg)
    bad["models"]["mean_pool_lld"]["train"]["select_on_val"] = True  # loso_session has no validation part
    with pytest.raises(ConfigError, match="models.mean_pool_lld.train"):
        sp.validate(bad)


def test_bad_corpus_name_and_negative_seed_name_their_keys(cfg):
    bad = copy.deepcopy(cfg)
    bad["experiments"]["boigne_table1"]["corpus"] = "demo2"
    with pytest.raises(ConfigError, match="experiments.boigne_table1.corpus"):
        sp.validate(bad)
    bad = copy.deepcopy(cfg)
    bad["experiments"]["boigne_table1"]["seeds"] = [-1]
    with pytest.raises(ConfigError, match="experiments.boigne_table1.seeds.0"):
        sp.validate(bad)


def test_a_protocol_label_set_overrides_the_corpus_default(cfg):
    cfg = sp.validate(cfg)
    assert sp.label_spec(cfg, "demo", "loso_session")["merge"] == {"exc": "hap"}
    assert sp.label_spec(cfg, "demo", "loso_speaker_improvised")["merge"] == {}


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


def test_convex_references_must_name_models_of_the_experiment(cfg):
    bad = copy.deepcopy(cfg)
    bad["experiments"]["boigne_table1"]["convex_references"]["mean_pool_lld"] = "logreg_ghost"
    with pytest.raises(ConfigError, match="experiments.boigne_table1.convex_references.*logreg_ghost"):
        sp.validate(bad)

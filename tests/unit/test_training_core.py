"""The training core on synthetic data: every kind of model through one run_training.

A toy speaker-adversarial model (MEnAN), a classical SVM, a reference-conditioned model and
the training options (SGD, polynomial decay, crops, fixed-length cycle-repeat, augmentation
copies, per-speaker normalisation, batch-size choice, early stopping), checked on what the
result file and the saved model say.
"""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ser_pipeline.errors import ConfigError, CorpusError
from ser_pipeline.manifest import normalise, write_manifest
from ser_pipeline.models import SerModel, register_model
from ser_pipeline.protocols.folds import write_fold_file
from ser_pipeline.store import write_store
from ser_pipeline.training.loop import run_training
from ser_pipeline.training.neural import TrainingError

CLASSES = ["neu", "hap", "sad", "ang"]
D = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("core")
    rng = np.random.default_rng(0)
    rows, feats, copies = [], {}, {}
    uid = 0
    for s in (1, 2, 3):
        for g in "FM":
            spk = f"Ses0{s}{g}"
            spk_offset = rng.normal(0, 2.0, D)  # speaker-specific shift: per-speaker norm removes it
            for ci, lab in enumerate(CLASSES):
                for k in range(6):
                    u = f"{spk}_{lab}_{k}"
                    raw = "exc" if (lab == "hap" and k == 0) else lab
                    rows.append({"utt_id": u, "audio_path": "/dev/null", "speaker": spk, "session": f"Ses0{s}",
                                 "label": raw, "mode": "improvised"})
                    t = int(rng.integers(60, 240))
                    x = rng.normal(size=(t, D)).astype(np.float32) + spk_offset.astype(np.float32)
                    x[:, ci] += 1.5
                    x[:, -1] = uid  # identifies the utterance (reference checks; normalize: none)
                    uid += 1
                    feats[u] = x
                    copies[u] = x[::2].copy()  # a "speed-perturbed" copy: half the frames
    df = normalise(pd.DataFrame(rows), "synth")
    write_manifest(df, tmp / "manifest.csv")
    for name, data in (("f.zarr", feats), ("fast.zarr", copies)):
        with write_store(tmp / name, D, {"extractor": "synthetic", "frame_rate": 100.0}) as w:
            for u, x in data.items():
                w.add(u, x)
    labels = {"classes": CLASSES, "merge": {"exc": "hap"}}
    write_fold_file(df, {"scheme": "leave_one_session_out", "labels": labels}, tmp / "loso.json", "synth", "loso")
    write_fold_file(df, {"scheme": "leave_one_speaker_out", "labels": labels}, tmp / "lospk.json", "synth", "lospk")
    return tmp


def spec(tmp, arch, fold_file="lospk.json", train=None, hparams=None, size="full", model_dir=None, augment=False):
    s = {"model_name": f"m_{arch}", "model": {"arch": arch, "inputs": {"audio": "f"}, "hparams": hparams or {},
                                               "train": {"epochs": 4, "lr": 3e-3, **(train or {})}},
         "corpus": "synth", "protocol": fold_file[:-5], "fold": "f01", "size": size, "seed": 0, "device": "cpu",
         "manifest": str(tmp / "manifest.csv"), "fold_file": str(tmp / fold_file),
         "stores": {"audio": str(tmp / "f.zarr")}, "augment_stores": {}}
    if augment:
        s["augment_stores"] = {"audio": [str(tmp / "fast.zarr")]}
    if model_dir:
        s["model_dir"] = str(model_dir)
    return s


def test_labels_come_from_the_protocol_mapping(corpus):
    res = run_training(spec(corpus, "mean_pool", train={"epochs": 1}))
    assert res["labels"]["merge"] == {"exc": "hap"}
    assert res["class_counts"]["train"] == {c: 24 for c in CLASSES}  # exc counted as hap
    assert res["n_val"] == 24 and res["n_test"] == 24
    assert sum(res["class_counts"]["test"].values()) == 24


def test_speaker_adversarial_model_takes_its_own_alternating_steps(corpus):
    res = run_training(spec(corpus, "li_menan", train={"epochs": 3, "lr": 1e-3}))
    h = res["history"][0]
    assert {"train_loss", "speaker_loss", "speaker_entropy", "lr", "val_UA"} <= set(h)
    assert all(np.isfinite(e["train_loss"]) for e in res["history"])
    assert res["n_parameters"] > 0 and res["kind"] == "neural"


def test_svm_chooses_C_on_validation_never_test_and_saves_tensors(corpus, tmp_path):
    from ser_pipeline.models import build_model
    from ser_pipeline.training.checkpoint import load_model_dir, split_state

    res = run_training(spec(corpus, "svm", model_dir=tmp_path / "m", train={"normalize": "speaker"}))
    assert res["kind"] == "classical" and res["selected_epoch"] is None
    assert "validation" in res["classical"]["selection"] and len(res["classical"]["scores"]) == 6
    assert res["metrics"]["UA"] > 0.5
    probs = np.array(res["predictions"]["test"]["probs"])
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    record, tensors = load_model_dir(tmp_path / "m")  # weights_only=True inside
    state, _ = split_state(tensors)
    model = build_model("svm", record["input_dims"], record["n_classes"], record["hparams"])
    model.load_state_tensors(state)
    assert record["classes"] == CLASSES and record["normalisation"] == "speaker"


def test_without_a_validation_part_C_is_chosen_by_speaker_grouped_cv(corpus):
    res = run_training(spec(corpus, "logreg", fold_file="loso.json"))
    assert "speaker-grouped" in res["classical"]["selection"] and res["val_metrics"] is None


def test_saved_neural_model_reproduces_the_jobs_probabilities(corpus, tmp_path):
    from ser_pipeline.models import build_model
    from ser_pipeline.store import FeatureStore
    from ser_pipeline.training.checkpoint import load_model_dir, split_state
    from ser_pipeline.training.data import apply_zscore, make_batch

    res = run_training(spec(corpus, "mean_pool", model_dir=tmp_path / "m"))
    record, tensors = load_model_dir(tmp_path / "m")
    state, norm = split_state(tensors)
    model = build_model(record["arch"], record["input_dims"], record["n_classes"], record["hparams"])
    model.load_state_dict(state)
    model.eval()
    ids = res["predictions"]["test"]["utt_id"]
    x = apply_zscore(FeatureStore(corpus / "f.zarr").load(ids), norm["audio"])
    with torch.no_grad():
        probs = torch.softmax(model(make_batch({"audio": x}, list(range(len(ids))), "cpu")), -1).numpy()
    np.testing.assert_allclose(probs, np.array(res["predictions"]["test"]["probs"]), atol=1e-5)


def test_sgd_with_polynomial_decay_reaches_zero_learning_rate(corpus):
    res = run_training(spec(corpus, "mean_pool", train={"optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-3,
                                                        "lr_schedule": "poly", "epochs": 3}))
    lrs = [h["lr"] for h in res["history"]]
    assert lrs[0] < 3e-3 and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert "SGD lr 0.003 momentum 0.9 weight decay 0.005" in res["options_text"]
    assert "polynomial lr decay" in res["options_text"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimisers_are_fused_and_update_as_the_per_tensor_ones(optimizer):
    from ser_pipeline.training.neural import _optimizers

    def model():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
        m.optimizer_groups = lambda: {"main": list(m.parameters())}
        return m

    def train(m, opt):
        x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
        for _ in range(5):
            loss = m(x).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.detach() for p in m.parameters()]

    opts = {"optimizer": optimizer, "lr": 0.01, "weight_decay": 0.01, "momentum": 0.9, "lr_schedule": "constant"}
    ours, ref = model(), model()
    opt = _optimizers(ours, opts, 10)[0]["main"]
    assert opt.defaults["fused"] is True
    extra = {"momentum": 0.9} if optimizer == "sgd" else {}
    per_tensor = type(opt)(ref.parameters(), lr=0.01, weight_decay=0.01, fused=False, foreach=False, **extra)
    for a, b in zip(train(ours, opt), train(ref, per_tensor)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


_SEEN: dict[str, list] = {}


@register_model("spy_lengths")
class SpyLengths(SerModel):
    """Records the valid lengths and features of what it is fed (a test probe)."""

    streams = ("audio",)
    needs = frozenset({"speaker", "utt_id"})

    @classmethod
    def default_hparams(cls):
        return {}

    def __init__(self, input_dims, n_classes, hparams=None, n_speakers=None):
        super().__init__(input_dims, n_classes, hparams)
        self.out = nn.Linear(input_dims["audio"], n_classes)

    def forward(self, batch):
        _SEEN.setdefault("train" if self.training else "eval", []).append(
            (batch["audio_mask"].sum(1).tolist(), batch.get("speaker"), batch["audio"].detach().clone(),
             batch["audio_mask"]))
        m = batch["audio_mask"].unsqueeze(-1).float()
        return self.out((batch["audio"] * m).sum(1) / m.sum(1))


def test_training_crops_are_training_only(corpus):
    _SEEN.clear()
    run_training(spec(corpus, "spy_lengths", train={"crop_seconds": 0.5, "epochs": 1}))
    assert max(max(lens) for lens, *_ in _SEEN["train"]) <= 50
    assert max(max(lens) for lens, *_ in _SEEN["eval"]) > 50, "validation/test see whole utterances"


def test_fixed_seconds_cuts_every_part_to_the_middle_and_cycle_repeats(corpus):
    _SEEN.clear()
    run_training(spec(corpus, "spy_lengths", train={"fixed_seconds": 1.5, "epochs": 1}))
    assert {n for key in ("train", "eval") for lens, *_ in _SEEN[key] for n in lens} == {150}


def test_speakers_are_indexed_over_training_speakers_only(corpus):
    _SEEN.clear()
    run_training(spec(corpus, "spy_lengths", train={"epochs": 1}))
    train_idx = torch.cat([s for _, s, *_ in _SEEN["train"]])
    eval_idx = torch.cat([s for _, s, *_ in _SEEN["eval"]])
    assert set(train_idx.tolist()) == {0, 1, 2, 3} and set(eval_idx.tolist()) == {-1}


def test_augmentation_copies_are_training_only(corpus):
    res = run_training(spec(corpus, "mean_pool", augment=True, train={"augment": {"audio": ["fast"]}, "epochs": 1}))
    assert res["n_train"] == 96 and res["n_train_augmented"] == 96
    assert res["n_test"] == 24 and "extra training copies from fast" in res["options_text"]


def test_per_speaker_normalisation_uses_each_speakers_own_statistics(corpus):
    _SEEN.clear()
    run_training(spec(corpus, "spy_lengths", train={"normalize": "speaker", "epochs": 1}))
    frames = [(x[m]) for _, _, x, m in _SEEN["eval"]]  # val + test speakers, whole utterances
    allx = torch.cat(frames)
    assert allx[:, :-1].mean(0).abs().max() < 0.05  # each of the 2 held-out speakers centred


def test_batch_size_is_chosen_on_validation(corpus):
    res = run_training(spec(corpus, "mean_pool", train={"batch_size": [8, 32], "epochs": 2}))
    sel = res["batch_size_selection"]
    assert set(sel["candidates"]) == {8, 32} and res["training"]["batch_size"] in (8, 32)
    assert "test part is never used" in sel["rule"]


def test_patience_stops_early_and_the_best_epoch_is_kept(corpus):
    res = run_training(spec(corpus, "mean_pool", train={"select_on_val": True, "patience": 1, "epochs": 40,
                                                        "lr": 0.5}))
    assert len(res["history"]) < 40 and res["selected_epoch"] == max(
        res["history"], key=lambda h: (h["val_UA"], -h["epoch"]))["epoch"]


@register_model("spy_nan")
class SpyNaN(SpyLengths):
    def compute_objectives(self, batch):
        return super().compute_objectives(batch) * float("nan")


def test_a_non_finite_loss_stops_the_job(corpus):
    with pytest.raises(TrainingError, match="non-finite training loss"):
        run_training(spec(corpus, "spy_nan", train={"epochs": 1}))


@register_model("spy_reference")
class SpyReference(SpyLengths):
    needs = frozenset({"reference", "utt_id"})

    def forward(self, batch):
        own = batch["audio"][:, 0, -1]
        ref = batch["ref_audio"][:, 0, -1]
        _SEEN.setdefault("pairs_train" if self.training else "pairs_eval", []).append(
            (batch["utt_id"], own.tolist(), ref.tolist()))
        return super().forward(batch)


def test_reference_is_a_neutral_of_the_same_speaker_never_itself_and_fixed_at_test(corpus):
    _SEEN.clear()
    res = run_training(spec(corpus, "spy_reference", train={"normalize": "none", "epochs": 3,
                                                            "reference": {"label": "neu", "eval_first_n": 3}}))
    # uid = speaker * 24 + class * 6 + k (see the fixture), class 0 = neu
    for ids, own, ref in _SEEN["pairs_train"]:
        for o, r in zip(own, ref):
            assert o != r, "never the utterance itself"
            assert int(r) // 24 == int(o) // 24 and (int(r) % 24) // 6 == 0, "a neutral of the same speaker"
    assert res["reference"]["test_reference"] == {"Ses01F": "Ses01F_neu_0"}
    assert [m["index"] for m in res["metrics_by_reference"]] == [0, 1, 2]
    assert res["metrics_by_reference"][1]["test_reference"] == {"Ses01F": "Ses01F_neu_1"}
    evals = [r for _, _, refs in _SEEN["pairs_eval"] for r in refs]
    assert set(evals) >= {24 * 0 + 0, 24 * 1 + 0}, "validation and test use the first neutral of their speaker"


def test_reference_needs_a_rule_and_other_models_refuse_one(corpus):
    with pytest.raises(ConfigError, match="reference"):
        run_training(spec(corpus, "spy_reference", train={"epochs": 1}))
    with pytest.raises(ConfigError, match="reference"):
        run_training(spec(corpus, "mean_pool", train={"epochs": 1, "reference": {"label": "neu"}}))


def test_stale_fold_file_is_refused(corpus, tmp_path):
    import json

    doc = json.loads((corpus / "lospk.json").read_text())
    doc["folds"][0]["test"].append("ghost_utt")
    (tmp_path / "f.json").write_text(json.dumps(doc))
    s = spec(corpus, "mean_pool", train={"epochs": 1})
    s["fold_file"] = str(tmp_path / "f.json")
    with pytest.raises(CorpusError, match="ghost_utt"):
        run_training(s)


def test_epoch_count_chosen_on_a_session_carved_from_training_never_the_test_one(corpus):
    res = run_training(spec(corpus, "mean_pool", fold_file="loso.json",
                            train={"epochs": 6, "epochs_from": "inner_val", "inner_val_group": "session"}))
    inner = res["inner_selection"]
    assert inner["carved"] == "Ses02" and res["test_session"] == "Ses01"
    assert len(inner["val_UA"]) == 6 and res["selected_epoch"] == inner["selected_epoch"]
    assert len(res["history"]) == inner["selected_epoch"]
    assert res["n_train"] == 96, "retrained on the whole training part"
    assert "carved from the training part" in res["epoch_selection"] and "up to 6" in res["options_text"]


def test_middle_crop_and_cycle_repeat():
    from ser_pipeline.training.data import middle_cycle

    a = np.arange(10, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(middle_cycle(a, 4)[:, 0], [3, 4, 5, 6])  # the middle of a longer one
    np.testing.assert_array_equal(middle_cycle(a[:3], 8)[:, 0], [0, 1, 2, 0, 1, 2, 0, 1])  # cycled
    assert middle_cycle(a, 10) is not None and len(middle_cycle(a, 10)) == 10


def test_the_chosen_batch_size_is_the_best_on_validation(corpus):
    res = run_training(spec(corpus, "mean_pool", train={"batch_size": [4, 8, 32], "epochs": 2}))
    cands = res["batch_size_selection"]["candidates"]
    best = max(cands, key=lambda b: (cands[b], -list(cands).index(b)))
    assert res["training"]["batch_size"] == best
    assert res["val_metrics"]["UA"] == pytest.approx(cands[best])

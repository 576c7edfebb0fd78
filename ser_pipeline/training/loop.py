"""One training job: (model, fold, data size, seed) -> a result JSON and a saved model.

The job is the same for every kind of model: read the fold (labels from the protocol's
mapping), prepare its data (:mod:`ser_pipeline.training.fold_data`), fit the model with
the trainer of its kind (neural: :mod:`ser_pipeline.training.neural`, classical:
:mod:`ser_pipeline.training.classical`), score the validation and test parts, and write
everything a reader needs to trust and reuse the number: the protocol and every training
option in words, class counts, per-utterance predictions, the training curve and whether
it had converged, the digests of the stores read. Nothing reads the test part before the
final evaluation.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ser_pipeline.errors import ConfigError
from ser_pipeline.training.fold_data import load_fold, reference_plan
from ser_pipeline.training.metrics import DEFINITIONS
from ser_pipeline.training.options import describe, reference_rule, train_options


def _who(speakers: list[str]) -> str:
    """The speakers of a part, named (or counted when there are many)."""
    names = sorted(set(speakers))
    return ", ".join(names) if len(names) <= 4 else f"{len(names)} speakers ({names[0]} ... {names[-1]})"


def _predictions(part, probs: np.ndarray) -> dict:
    return {"utt_id": list(part.ids), "speaker": list(part.speakers), "y_true": part.y.tolist(),
            "y_pred": probs.argmax(axis=1).tolist(), "probs": np.round(probs, 6).tolist()}


def _reference_sweep(fit: dict, data, opts: dict) -> list[dict]:
    """Test scores with the k-th reference utterance of every test speaker, k = 0..n-1."""
    from ser_pipeline.training.data import first_of_label

    test = data.parts["test"]
    out = []
    for k in range(int(opts["reference"]["eval_first_n"])):
        chosen = first_of_label(test.ids, test.speakers, test.raw, opts["reference"]["label"], data.order, skip=k)
        if set(chosen) != set(test.speakers):
            break  # some test speaker has fewer than k+1 reference utterances
        m, _ = fit["evaluator"].scores(fit["model"], "test", chosen)
        out.append({"index": k, "test_reference": chosen, "UA": m["UA"], "WA": m["WA"]})
    return out


def _epoch_selection(opts: dict, fit: dict, kind: str) -> str:
    if kind != "neural":
        return "not applicable (classical model)"
    if "inner_selection" in fit:
        i = fit["inner_selection"]
        return (f"epoch count chosen on validation UA of a {i['group']} carved from the training part, then "
                f"retrained on the whole training part (the test part is never used)")
    return "best validation UA" if opts["select_on_val"] else "fixed epochs, no early stopping"


def run_training(spec: dict) -> dict:
    """Train and evaluate one job; ``spec`` is built by :func:`ser_pipeline.config.train_spec`.

    Returns the result record (see docs/design.md, "Result files"); with ``spec["model_dir"]``
    the trained model is saved there too.
    """
    from ser_pipeline.models import build_model, model_class

    t0 = time.time()
    name, model_cfg = spec["model_name"], spec["model"]
    opts = train_options(model_cfg.get("train"), f"models.{name}.train")
    device, seed = spec["device"], int(spec["seed"])
    cls = model_class(model_cfg["arch"])
    need_ref = "reference" in cls.needs
    if need_ref != bool(opts["reference"]):
        raise ConfigError(f"models.{name}.train.reference: " + (
            f"arch '{model_cfg['arch']}' conditions on a reference utterance; say which (e.g. {{label: neu}})"
            if need_ref else f"arch '{model_cfg['arch']}' takes no reference utterance; remove the key"))
    torch.manual_seed(seed)
    data = load_fold(spec, opts, seed, need_ref)
    if (opts["select_on_val"] or isinstance(opts["batch_size"], list)) and "val" not in data.parts:
        raise ConfigError(f"models.{name}.train: select_on_val / a batch-size list choose on the validation "
                          f"part, but protocol '{spec['protocol']}' has none")
    plan = reference_plan(data, opts) if need_ref else None
    train = data.parts["train"]
    input_dims = {s: int(train.streams[s][0].shape[1]) for s in spec["stores"]}
    hparams = model_cfg.get("hparams") or {}

    def build():
        return build_model(model_cfg["arch"], input_dims, len(data.classes), hparams,
                           n_speakers=len(data.train_speakers))

    if cls.kind == "classical":
        from ser_pipeline.training.classical import ClassicalEvaluator, fit_classical

        fit = fit_classical(build(), data, opts, name)
        fit["evaluator"] = ClassicalEvaluator(data)
    else:
        from ser_pipeline.training.neural import fit_neural

        inner = None
        if opts["epochs_from"] == "inner_val":
            if "val" in data.parts:
                raise ConfigError(f"models.{name}.train.epochs_from: protocol '{spec['protocol']}' has a validation "
                                  f"part; use select_on_val instead of carving one")
            inner_data, carved = data.carve(opts["inner_val_group"])
            probe = fit_neural(build, inner_data, {**opts, "select_on_val": True}, device, seed, None, name)
            inner = {"group": opts["inner_val_group"], "carved": carved, "selected_epoch": probe["selected_epoch"],
                     "val_UA": [h.get("val_UA") for h in probe["history"]],
                     "rule": f"epoch with the best UA on `{opts['inner_val_group']}` {carved}, carved from the "
                             f"training part (the test part is never used); then retrained on the whole training "
                             f"part for that many epochs"}
        fit_opts = {**opts, "epochs": inner["selected_epoch"], "patience": None} if inner else opts
        fit = fit_neural(build, data, fit_opts, device, seed, plan, name)
        if inner:
            fit["inner_selection"] = inner
    model = fit["model"]
    if spec.get("export"):
        return _export(spec, fit, data, input_dims, opts, plan, cls.kind, t0)
    test_metrics, test_probs = fit["evaluator"].scores(model, "test")
    predictions = {"test": _predictions(data.parts["test"], test_probs)}
    if "val" in data.parts:
        val_metrics, val_probs = fit["evaluator"].scores(model, "val")
        predictions["val"] = _predictions(data.parts["val"], val_probs)
    else:
        val_metrics = None
    fold, doc = data.fold, data.fold_doc
    n_train_orig = len(train) - data.augmented
    result = {
        "model": name,
        "arch": model_cfg["arch"],
        "kind": cls.kind,
        "corpus": spec["corpus"],
        "protocol": spec["protocol"],
        "protocol_description": doc["description"],
        "fold": fold["name"],
        "test_session": fold.get("test_session"),
        "test_speaker": fold.get("test_speaker") or _who(data.parts["test"].speakers),
        "val_speaker": fold.get("val_speaker") or (_who(data.parts["val"].speakers) if "val" in data.parts else None),
        "size_per_class": spec["size"],
        "seed": seed,
        "labels": doc["labels"],
        "class_counts": {p: {c: int((data.parts[p].y[:n_train_orig if p == "train" else None] == i).sum())
                             for i, c in enumerate(data.classes)} if p in data.parts else {c: 0 for c in data.classes}
                         for p in ("train", "val", "test")},
        "n_train": n_train_orig,
        "n_train_augmented": data.augmented,
        "n_train_per_class": None,
        "size_clamped": data.clamped,
        "n_val": len(data.parts["val"]) if "val" in data.parts else 0,
        "n_test": len(data.parts["test"]),
        "notes": list(doc.get("notes", [])),
        "metrics": test_metrics,
        "val_metrics": val_metrics,
        "predictions": predictions,
        "metric_definitions": DEFINITIONS,
        "selected_epoch": fit.get("selected_epoch"),
        "epoch_selection": _epoch_selection(opts, fit, cls.kind),
        "history": fit.get("history", []),
        "convergence": fit.get("convergence"),
        "training": {**opts, **({"batch_size": fit["batch_size"]} if "batch_size" in fit else {})},
        "options_text": describe(opts, cls.kind),
        "hparams": hparams,
        "features": {s: {**m, "config": spec.get("features", {}).get(s)} for s, m in data.meta.items()},
        "n_parameters": int(sum(p.numel() for p in model.parameters())) if cls.kind == "neural" else None,
        "device": device,
        "digest": spec.get("digest"),
        "model_dir": spec.get("model_dir"),
    }
    result["n_train_per_class"] = result["class_counts"]["train"]
    if data.clamped:
        result["notes"].append(f"size {spec['size']} per class exceeds what the training part has for "
                               f"{data.clamped}: those classes use all they have")
    if "inner_selection" in fit:
        result["inner_selection"] = fit["inner_selection"]
    if "batch_size_selection" in fit:
        result["batch_size_selection"] = fit["batch_size_selection"]
    if cls.kind == "classical":
        result["classical"] = fit["classical"]
    if need_ref:
        result["reference"] = {"rule": reference_rule(opts["reference"]),
                               "test_reference": plan["test"],
                               "reference_scored": True,
                               "reference_scored_note": "each test speaker's reference utterance is also "
                                                        "one of the scored test utterances"}
        if opts["reference"]["eval_first_n"]:
            result["metrics_by_reference"] = _reference_sweep(fit, data, opts)
    if spec.get("model_dir"):
        _save(spec, result, fit, data, input_dims, opts, plan)
    result["wall_seconds"] = round(time.time() - t0, 2)
    return result


def _export(spec, fit, data, input_dims, opts, plan, kind, t0) -> dict:
    """An export job: the model trained on every utterance, saved; there is nothing to score."""
    result = {"model": spec["model_name"], "arch": spec["model"]["arch"], "kind": kind, "labels": data.labels,
              "hparams": spec["model"].get("hparams") or {}, "training": opts, "options_text": describe(opts, kind),
              "features": {s: {**m, "config": spec.get("features", {}).get(s)} for s, m in data.meta.items()},
              "corpus": spec["corpus"], "protocol": spec["protocol"], "fold": "all", "size_per_class": "full",
              "seed": int(spec["seed"]), "export": spec["export"], "n_train": len(data.parts["train"]),
              "class_counts": {"train": {c: int((data.parts["train"].y == i).sum()) for i, c in enumerate(data.classes)}}}
    _save(spec, result, fit, data, input_dims, opts, plan)
    result["wall_seconds"] = round(time.time() - t0, 2)
    return result


def _save(spec, result, fit, data, input_dims, opts, plan) -> None:
    from ser_pipeline.training.checkpoint import save_model_dir

    record = {
        "model_name": result["model"], "arch": result["arch"], "kind": result["kind"],
        "hparams": result["hparams"], "input_dims": input_dims, "n_classes": len(data.classes),
        "n_speakers": len(data.train_speakers), "classes": data.classes, "labels": result["labels"],
        "training": result["training"], "features": result["features"],
        "trained_on": {k: result[k] for k in ("corpus", "protocol", "fold", "size_per_class", "seed")},
        "export": result.get("export"),
        "code_digest": spec.get("digest"),
    }
    if opts["save_embeddings"] and hasattr(fit["model"], "embed") and result["kind"] == "neural" \
            and not spec.get("export"):
        record["embeddings"] = "embeddings.npz"
    save_model_dir(spec["model_dir"], fit["model"], record, data.norm)
    if record.get("embeddings"):
        _save_embeddings(spec, fit, data, plan)
        result["embeddings"] = f"{spec['model_dir']}/embeddings.npz"


def _save_embeddings(spec, fit, data, plan) -> None:
    """Validation + test embeddings (the fold's unseen speakers), for probes and t-SNE plots."""
    from pathlib import Path

    from ser_pipeline.atomic import atomic_path
    from ser_pipeline.training.neural import embed

    parts = [p for p in ("val", "test") if p in data.parts]
    emb = [embed(fit["model"], data.parts[p], fit["batcher"], data, p, plan[p] if plan else None) for p in parts]
    ids = [u for p in parts for u in data.parts[p].ids]
    with atomic_path(Path(spec["model_dir"]) / "embeddings.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, embeddings=np.concatenate(emb), utt_id=np.array(ids),
                     speaker=np.array([s for p in parts for s in data.parts[p].speakers]),
                     label=np.array([data.classes[y] for p in parts for y in data.parts[p].y]))

"""Cross-corpus evaluation: every fold model of one experiment scored on another corpus.

A general experiment kind (``kind: cross_corpus``): train on one corpus and protocol as
usual, then apply each fold's saved model, unchanged, to the utterances of another corpus
and score them by a named rule. ``labels`` maps the evaluation corpus's labels onto the
model's classes like a protocol does (one label per utterance: accuracy, UA, WA); a corpus
module can register its own rule (``@register_eval_rule``), such as Li et al.'s CMU-MOSEI
rule where a prediction is right when its emotion's rating is positive.
"""
from __future__ import annotations

import numpy as np

from ser_pipeline.errors import ConfigError
from ser_pipeline.inference import LoadedModel
from ser_pipeline.manifest import read_manifest
from ser_pipeline.store import FeatureStore


def _labels_rule(df, predicted, spec: dict, classes: list[str]):
    from ser_pipeline.protocols.labels import describe_labels, map_labels

    mapped, _ = map_labels(df, spec, "evaluation corpus")
    used = mapped.notna().to_numpy()
    correct = np.zeros(len(df), dtype=bool)
    correct[used] = np.asarray(predicted, dtype=object)[used] == mapped.to_numpy()[used]
    return used, correct, f"labels mapped like a protocol: {describe_labels(spec)}", mapped


def evaluate(spec: dict) -> dict:
    model = LoadedModel(spec["model_dir"])
    df = read_manifest(spec["manifest"])
    stores = {s: FeatureStore(p) for s, p in spec["stores"].items()}
    model.check_features({s: st.attrs for s, st in stores.items()})
    ids = df["utt_id"].tolist()
    streams = {s: st.load(ids) for s, st in stores.items()}
    rates = {s: st.attrs.get("frame_rate") for s, st in stores.items()}
    probs = model.predict(streams, df["speaker"].tolist(), frame_rates=rates, utt_ids=ids)
    predicted = np.array(model.classes, dtype=object)[probs.argmax(axis=1)]
    rule = spec["rule"]
    metrics, counts = {}, {}
    if rule["name"] == "labels":
        used, correct, text, mapped = _labels_rule(df, predicted, rule, model.classes)
        from ser_pipeline.training.metrics import scores

        truth = [model.classes.index(c) for c in mapped[used]]
        s = scores(np.array(truth), probs[used].argmax(axis=1), model.classes)
        metrics.update({"UA": s["UA"], "WA": s["WA"]})
        counts = {c: int((mapped[used] == c).sum()) for c in model.classes}
    else:
        from ser_pipeline.corpora import eval_rule_function

        used, correct, text = eval_rule_function(rule["name"])(df, predicted)
        # the corpus's own (dominant) labels of the scored rows; the rule may accept several
        counts = {str(k): int(v) for k, v in df.loc[used, "label"].value_counts().sort_index().items()}
    if not used.any():
        raise ConfigError(f"cross-corpus rule '{rule['name']}' keeps no utterance of {spec['manifest']}")
    metrics["accuracy"] = float(correct[used].mean())
    return {
        "model": spec["model_name"], "fold": spec["fold"], "seed": spec["seed"],
        "train_corpus": spec["train_corpus"], "train_protocol": spec["train_protocol"],
        "eval_corpus": spec["eval_corpus"], "rule": {"name": rule["name"], "description": text},
        "n": int(used.sum()), "n_available": len(df), "metrics": metrics, "class_counts": counts,
        "model_dir": spec["model_dir"], "digest": spec.get("digest"),
        "predictions": {"utt_id": [u for u, k in zip(ids, used) if k],
                        "predicted": [str(p) for p, k in zip(predicted, used) if k],
                        "correct": [bool(c) for c, k in zip(correct, used) if k]},
    }

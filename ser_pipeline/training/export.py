"""Training a model on all of a corpus, for use on new recordings (``export``).

Cross-validation measures a model; a model to use should see every utterance. Without a
test part the epoch count cannot be chosen on data the model is scored on, so it is fixed
in advance: a model trained for a fixed number of epochs keeps it; a model that selects
its epoch on the validation part trains for the median epoch its cross-validation folds
selected (the experiment's runs are the job's inputs), which the model folder records.
"""
from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np

from ser_pipeline.errors import ConfigError
from ser_pipeline.manifest import read_manifest
from ser_pipeline.protocols.folds import apply_filter
from ser_pipeline.protocols.labels import map_labels


def export_spec_epochs(model_cfg: dict, run_paths: list[str]) -> tuple[dict, str]:
    """The model config to train with and a sentence saying how its epoch count was fixed."""
    cfg = copy.deepcopy(model_cfg)
    train = cfg.setdefault("train", {})
    if not train.get("select_on_val") or cfg["arch"] in ("svm", "logreg"):
        return cfg, f"fixed: {train.get('epochs', 'default')} epochs as configured"
    selected = [json.loads(Path(p).read_text())["selected_epoch"] for p in run_paths]
    if not selected:
        raise ConfigError("export: a model that selects its epoch on validation needs its experiment's runs")
    epochs = int(np.median(selected))
    train.update(select_on_val=False, patience=None, epochs=max(1, epochs))
    if isinstance(train.get("batch_size"), list):
        sizes = [json.loads(Path(p).read_text())["training"]["batch_size"] for p in run_paths]
        train["batch_size"] = int(max(set(sizes), key=sizes.count))
    return cfg, (f"{epochs} epochs: the median of the epochs its {len(selected)} cross-validation runs selected "
                 f"on their validation parts ({sorted(selected)})")


def run_export(spec: dict) -> dict:
    from ser_pipeline.training.loop import run_training

    df = read_manifest(spec["manifest"])
    proto = spec["protocol_spec"]
    mapped, _ = map_labels(df, proto["labels"], spec["manifest"])
    kept = apply_filter(df.assign(label=mapped)[mapped.notna()], proto.get("filter"))
    model_cfg, how = export_spec_epochs(spec["model"], spec.get("runs", []))
    with tempfile.TemporaryDirectory() as tmp:
        fold_file = Path(tmp) / "all.json"
        fold_file.write_text(json.dumps({
            "corpus": spec["corpus"], "protocol": spec["protocol"], "labels": proto["labels"],
            "description": f"all of corpus {spec['corpus']} under protocol {spec['protocol']}'s label set",
            "label_of": dict(zip(kept["utt_id"], kept["label"])), "notes": [],
            "folds": [{"name": "all", "train": sorted(kept["utt_id"]), "val": [], "test": []}]}))
        train_spec = {**spec, "model": model_cfg, "fold_file": str(fold_file), "fold": "all", "size": "full",
                      "export": {"name": spec["name"], "epochs": how}}
        return run_training(train_spec)

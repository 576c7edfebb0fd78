"""Fitting a classical model: same fold data, same result file as a neural one.

The core hands the model each part's (normalised) frames; the model pools them to one
vector per utterance and chooses its hyperparameter on the validation part, or by
speaker-grouped cross-validation of the training part when the protocol has none.
"""
from __future__ import annotations

import numpy as np

from ser_pipeline.errors import ConfigError
from ser_pipeline.training.fold_data import FoldData
from ser_pipeline.training.metrics import scores


def fit_classical(model, data: FoldData, opts: dict, model_name: str) -> dict:
    for key in ("input_mode", "crop_seconds", "reference"):
        if opts[key] not in (None, "whole", {}):
            raise ConfigError(f"models.{model_name}.train.{key}: not used by a classical model; remove it")
    if len(model.streams) != 1:
        raise ConfigError(f"models.{model_name}: classical models read one input stream")
    stream = model.streams[0]
    train = data.parts["train"]
    val = data.parts.get("val")
    info = model.fit(train.streams[stream], train.y,
                     None if val is None else val.streams[stream], None if val is None else val.y,
                     groups=np.array(train.speakers))
    return {"model": model, "classical": info, "val_metrics": None if val is None else _score(model, data, "val")[0]}


def _score(model, data: FoldData, name: str) -> tuple[dict, np.ndarray]:
    part = data.parts[name]
    probs = model.predict_proba(part.streams[model.streams[0]])
    return scores(part.y, probs.argmax(axis=1), data.classes), probs


class ClassicalEvaluator:
    def __init__(self, data: FoldData):
        self.data = data

    def scores(self, model, name: str, chosen=None) -> tuple[dict, np.ndarray]:
        return _score(model, self.data, name)

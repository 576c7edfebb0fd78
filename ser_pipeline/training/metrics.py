"""UA and WA, defined once.

UA (unweighted accuracy) is the mean of per-class recalls, so every emotion counts the
same however rare; WA (weighted accuracy) is plain accuracy over utterances. Papers on
IEMOCAP mix the two names up; every result file states which is which.
"""
from __future__ import annotations

import numpy as np

DEFINITIONS = {
    "UA": "unweighted accuracy: mean over classes of per-class recall",
    "WA": "weighted accuracy: fraction of all test utterances classified correctly",
}


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return cm


def scores(y_true, y_pred, classes: list[str]) -> dict:
    cm = confusion(y_true, y_pred, len(classes))
    support = cm.sum(axis=1)
    present = support > 0
    recalls = np.where(present, np.diag(cm) / np.maximum(support, 1), np.nan)
    return {
        "UA": float(np.nanmean(recalls)) if present.any() else float("nan"),
        "WA": float(np.trace(cm) / max(cm.sum(), 1)),
        "recall": {c: (None if np.isnan(r) else float(r)) for c, r in zip(classes, recalls)},
        "confusion": cm.tolist(),
        "classes": list(classes),
        "n": int(cm.sum()),
    }

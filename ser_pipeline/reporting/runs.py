"""Result files as the reporting code reads them: loading, naming, and checks before comparing.

Tables compare systems only on runs that saw the same data. Everything that would make a
comparison silently wrong (a missing key, a duplicated run, folds whose test parts differ
between systems, different label sets) stops here with an error naming the file.
"""
from __future__ import annotations

import json
import numpy as np

from ser_pipeline.reporting.stats import IncompleteResultsError


def load_runs(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        with open(p) as f:
            try:
                r = json.load(f)
            except json.JSONDecodeError as e:
                raise IncompleteResultsError(f"{p}: not valid JSON ({e})") from None
        r["_source"] = str(p)
        runs.append(r)
    if not runs:
        raise IncompleteResultsError("no result files given")
    return runs


def run_name(r: dict) -> str:
    if r.get("_source"):
        return r["_source"]
    return f"{r.get('model')}/n{r.get('size_per_class')}/s{r.get('seed')}/{r.get('fold')}"


def require(r: dict, path: str):
    """r[a][b]... for path 'a.b'; a missing key names the file (an older result file lacks it)."""
    cur = r
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise IncompleteResultsError(
                f"{run_name(r)}: no '{path}' (written before the current result format? rerun its training job)")
        cur = cur[part]
    return cur


def size_str(r: dict) -> str:
    return str(r["size_per_class"])


def size_key(s: str):
    return (1, 0) if s == "full" else (0, int(s))


def pair_key(r: dict) -> tuple[str, str, int]:
    return size_str(r), r["fold"], int(r["seed"])


def metric_value(r: dict, metric: str, part: str = "metrics") -> float:
    v = require(r, f"{part}.{metric}")
    if v is None or not np.isfinite(float(v)):
        raise IncompleteResultsError(f"{run_name(r)}: {part}.{metric} is {v!r}, not a finite score")
    return float(v)


def by_model(runs: list[dict], models: list[str]) -> dict[str, list[dict]]:
    """Runs per model in the experiment's order; an unknown model or a duplicate run is an error."""
    out = {m: [] for m in models}
    seen = {}
    for r in runs:
        if r["model"] not in out:
            raise IncompleteResultsError(
                f"{run_name(r)}: model '{r['model']}' is not in the experiment's models {models}")
        key = (r["model"], *pair_key(r))
        if key in seen:
            raise IncompleteResultsError(f"two results for the same run {key}: {seen[key]} and {run_name(r)}")
        seen[key] = run_name(r)
        out[r["model"]].append(r)
    return out


def check_same_labels(runs: list[dict]) -> dict:
    """The label definition every run shares; runs with another label set cannot share a table."""
    first = require(runs[0], "labels")
    for r in runs[1:]:
        lab = require(r, "labels")
        if list(lab.get("classes", [])) != list(first.get("classes", [])) or lab.get("merge") != first.get("merge") \
                or lab.get("column") != first.get("column"):
            raise IncompleteResultsError(
                f"{run_name(r)} has labels {lab}, but {run_name(runs[0])} has {first}: one table needs one label set")
    return first


def test_predictions(r: dict, part: str = "test") -> dict:
    """The run's per-utterance predictions on a part, sorted by utterance id, as arrays."""
    p = require(r, f"predictions.{part}")
    n_classes = len(require(r, "labels.classes"))
    utt = np.asarray(p.get("utt_id", []), dtype=object)
    y_true = np.asarray(p.get("y_true", []), dtype=int)
    y_pred = np.asarray(p.get("y_pred", []), dtype=int)
    if not (len(utt) == len(y_true) == len(y_pred)) or len(utt) == 0:
        raise IncompleteResultsError(f"{run_name(r)}: predictions.{part} has {len(utt)} utt_id, "
                                     f"{len(y_true)} y_true, {len(y_pred)} y_pred (need equal, non-zero)")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= n_classes:
            raise IncompleteResultsError(f"{run_name(r)}: predictions.{part}.{name} outside 0..{n_classes - 1}")
    speakers = p.get("speaker")
    if speakers is None or len(speakers) != len(utt):
        fallback = r.get(f"{part}_speaker")
        if not fallback:
            raise IncompleteResultsError(
                f"{run_name(r)}: predictions.{part}.speaker missing and no {part}_speaker: per-speaker scores need one")
        speakers = [fallback] * len(utt)  # the fold's test part is one speaker
    speakers = np.asarray(speakers, dtype=object)
    order = np.argsort(utt.astype(str), kind="stable")
    return {"utt_id": utt[order], "y_true": y_true[order], "y_pred": y_pred[order], "speaker": speakers[order]}


def all_test_predictions(runs: list[dict]) -> list[dict]:
    """Test predictions of every run (same order); all runs of a fold must score the same utterances."""
    preds, first = [], {}
    for r in runs:
        pred = test_predictions(r)
        fold = r["fold"]
        if fold in first:
            ref_run, ref = first[fold]
            if len(ref["utt_id"]) != len(pred["utt_id"]) or np.any(ref["utt_id"] != pred["utt_id"]) \
                    or np.any(ref["y_true"] != pred["y_true"]):
                raise IncompleteResultsError(
                    f"fold {fold}: {run_name(r)} scored other test utterances (or labels) than {run_name(ref_run)}; "
                    "systems tested on different data cannot be compared")
        else:
            first[fold] = (r, pred)
        preds.append(pred)
    return preds


def options_text(r: dict) -> str:
    if r.get("kind") == "classical" and isinstance(r.get("training"), dict):
        # Results written before options_text knew the model kind stated the neural defaults
        # (Adam, batches, epochs) for a scikit-learn model; state what it really was.
        from ser_pipeline.training.options import describe

        return describe(r["training"], "classical")
    if r.get("options_text"):
        return r["options_text"]
    t = r.get("training") or {}
    if t.get("options_text"):
        return t["options_text"]
    raise IncompleteResultsError(f"{run_name(r)}: no 'options_text' (top level or under 'training')")

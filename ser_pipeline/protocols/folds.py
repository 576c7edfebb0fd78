"""Evaluation protocols as data: fold files written once per (corpus, protocol).

Writing folds to a file (instead of recomputing them in every training job) means every
model of an experiment provably sees the same split, the split can be audited, and the
speaker-leakage check runs once, before any training.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from ser_pipeline.atomic import write_json
from ser_pipeline.errors import ConfigError, CorpusError, LeakageError

SCHEMES = {
    "leave_one_session_out": "train on all other sessions, test on the held-out session, no validation set",
    "leave_one_speaker_out": ("train on all other sessions; of the held-out session one speaker is the test set "
                              "and the other the validation set, then the two are swapped (2 folds per session)"),
}


def describe(spec: dict) -> str:
    """A one-line statement of the protocol for table headers and result files."""
    text = SCHEMES[spec["scheme"]]
    if spec["scheme"] == "leave_one_speaker_out" and not spec.get("swap_validation", True):
        text = ("train on all other sessions; of the held-out session the first speaker (sorted id) is the "
                "validation set and the second the test set (1 fold per session)")
    if spec.get("filter"):
        text += "; only utterances with " + ", ".join(f"{k}={v}" for k, v in spec["filter"].items())
    if spec.get("script_disjoint"):
        text += "; script-disjoint: training excludes every utterance whose script occurs in the test session"
    return text


def apply_filter(df: pd.DataFrame, filt: dict | None) -> pd.DataFrame:
    for key, value in (filt or {}).items():
        if key not in df.columns:
            raise ConfigError(f"protocols.*.filter: manifest has no column '{key}'")
        values = value if isinstance(value, list) else [value]
        df = df[df[key].isin([str(v) for v in values])]
    if df.empty:
        raise ConfigError(f"protocol filter {filt} leaves no utterances")
    return df


def make_folds(df: pd.DataFrame, spec: dict) -> list[dict]:
    scheme = spec.get("scheme")
    if scheme not in SCHEMES:
        raise ConfigError(f"protocols.*.scheme: '{scheme}' is not one of {sorted(SCHEMES)}")
    df = apply_filter(df, spec.get("filter"))
    sessions = sorted(df["session"].unique())
    if len(sessions) < 2:
        raise ConfigError(f"protocol '{scheme}' needs at least 2 sessions, the manifest has {sessions}")
    folds = []
    for sess in sessions:
        held = df[df["session"] == sess]
        train = df[df["session"] != sess]
        if spec.get("script_disjoint"):
            test_scripts = set(held.loc[held["script"] != "", "script"])
            train = train[~train["script"].isin(test_scripts)]
        if scheme == "leave_one_session_out":
            folds.append({"name": f"f{len(folds) + 1:02d}", "test_session": sess,
                          "train": _ids(train), "val": [], "test": _ids(held)})
            continue
        speakers = sorted(held["speaker"].unique())
        if len(speakers) != 2:
            raise ConfigError(f"leave_one_speaker_out needs exactly 2 speakers per session; "
                              f"session {sess} has {speakers}")
        # swap_validation: each speaker is tested once (2 folds per session); without it the
        # second speaker (M in IEMOCAP's sorted order) is tested and the first validates.
        for test_spk in (speakers if spec.get("swap_validation", True) else speakers[1:]):
            val_spk = [s for s in speakers if s != test_spk][0]
            folds.append({"name": f"f{len(folds) + 1:02d}", "test_session": sess, "test_speaker": test_spk,
                          "val_speaker": val_spk, "train": _ids(train),
                          "val": _ids(held[held["speaker"] == val_spk]),
                          "test": _ids(held[held["speaker"] == test_spk])})
    return folds


def _ids(df: pd.DataFrame) -> list[str]:
    return sorted(df["utt_id"].tolist())


def check_leakage(folds: list[dict], df: pd.DataFrame, script_disjoint: bool = False) -> None:
    """Raise LeakageError if any fold shares a speaker (or, if asked, a script) across its parts."""
    spk = dict(zip(df["utt_id"], df["speaker"]))
    scr = dict(zip(df["utt_id"], df["script"]))
    for fold in folds:
        parts = {p: set(fold[p]) for p in ("train", "val", "test")}
        for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
            shared_utts = parts[a] & parts[b]
            if shared_utts:
                raise LeakageError(f"fold {fold['name']}: utterances in both {a} and {b}: {sorted(shared_utts)[:3]}")
            sa = {spk[u] for u in parts[a]}
            sb = {spk[u] for u in parts[b]}
            if sa & sb:
                raise LeakageError(f"fold {fold['name']}: speakers {sorted(sa & sb)} are in both {a} and {b}")
        if script_disjoint:
            tr = {scr[u] for u in parts["train"]} - {""}
            te = {scr[u] for u in parts["test"]} - {""}
            if tr & te:
                raise LeakageError(f"fold {fold['name']}: scripts {sorted(tr & te)[:3]} in both train and test")


def write_fold_file(df: pd.DataFrame, spec: dict, path, corpus: str, protocol: str,
                    expected_folds: int | None = None) -> dict:
    """Checks run before anything is written, so a refused split never leaves a file behind."""
    folds = make_folds(df, spec)
    if expected_folds is not None and len(folds) != expected_folds:
        raise CorpusError(f"corpus {corpus}: protocol {protocol} gives {len(folds)} folds but the job graph "
                          f"expects {expected_folds} (set corpora.{corpus}.n_sessions)")
    check_leakage(folds, df, bool(spec.get("script_disjoint")))
    doc = {
        "corpus": corpus,
        "protocol": protocol,
        "spec": spec,
        "description": describe(spec),
        "manifest_sha256": hashlib.sha256(
            json.dumps(sorted(zip(df["utt_id"], df["speaker"], df["label"]))).encode()).hexdigest(),
        "folds": folds,
    }
    write_json(path, doc)
    return doc


def read_fold_file(path) -> dict:
    with open(path) as f:
        return json.load(f)


def subsample_per_class(ids: list[str], labels: list[str], per_class, seed: int) -> list[str]:
    """Exactly ``per_class`` training utterances of each class (all of a smaller class), by seed.

    ``per_class`` is an int or "full". Sampling uses only the ids given (the fold's training
    part), so test sessions are never touched.
    """
    if per_class in (None, "full"):
        return sorted(ids)
    n = int(per_class)
    if n <= 0:
        raise ConfigError(f"data size per class must be positive, got {per_class}")
    by_class: dict[str, list[str]] = {}
    for utt, lab in sorted(zip(ids, labels)):
        by_class.setdefault(lab, []).append(utt)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in sorted(by_class):
        pool = by_class[cls]
        # A permutation per class, then its first n: for one seed, the 125-per-class set is
        # inside the 250-per-class set, so a scaling curve is not blurred by resampling.
        perm = rng.permutation(len(pool))
        chosen.extend(pool[i] for i in perm[:n])
    return sorted(chosen)

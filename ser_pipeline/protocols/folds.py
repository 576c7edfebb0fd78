"""Evaluation protocols as data: fold files written once per (corpus, protocol).

Writing folds to a file (instead of recomputing them in every training job) means every
model of an experiment provably sees the same split, the split can be audited, and the
speaker-leakage check runs once, before any training. The fold file also carries the
protocol's label mapping (each utterance's class) and the class counts of every part, so
a training job never decides a label itself.

Every check runs before anything is written: speaker (or script) leakage, an empty
training, validation or test part, a class missing from a fold's training or test part.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from ser_pipeline.atomic import write_json
from ser_pipeline.errors import ConfigError, CorpusError, LeakageError
from ser_pipeline.protocols.labels import describe_labels, label_spec, map_labels

SCHEMES = {
    "leave_one_session_out": "train on all other sessions, test on the held-out session, no validation set",
    "leave_one_speaker_out": ("train on all other sessions; of the held-out session one speaker is the test set "
                              "and the other the validation set, then the two are swapped (2 folds per session)"),
    "leave_one_group_out": "train on all other groups, test on the held-out group",
    "group_kfold": "groups split into k folds; train on the other folds, test on the held-out one",
    "predefined": "the corpus's official partition",
}
VALIDATION_RULES = ("none", "next_group")


def describe(spec: dict) -> str:
    """A one-line statement of the protocol for table headers and result files."""
    scheme = spec["scheme"]
    text = SCHEMES[scheme]
    if scheme == "leave_one_speaker_out" and not spec.get("swap_validation", True):
        text = ("train on all other sessions; of the held-out session the first speaker (sorted id) is the "
                "validation set and the second the test set (1 fold per session)")
    elif scheme == "leave_one_group_out":
        text = f"train on all other `{spec.get('group', 'speaker')}` groups, test on the held-out one"
    elif scheme == "group_kfold":
        text = (f"`{spec.get('group', 'speaker')}` groups split into {spec['k']} folds (seed {spec.get('seed', 0)}); "
                f"train on the others, test on the held-out fold")
    elif scheme == "predefined":
        col = spec.get("column", "split")
        text = (f"the corpus's official partition (column `{col}`): train {spec['train']}, test {spec['test']}")
        if spec.get("val"):
            text += f", validation {spec['val']}"
        if spec.get("val_speakers"):
            text += f", validation speakers {spec['val_speakers']} (taken out of training)"
    if scheme in ("leave_one_group_out", "group_kfold"):
        val = spec.get("validation", "none")
        text += ("; no validation set" if val == "none" else
                 "; the next group (fold) in sorted order is the validation set and leaves training")
    if spec.get("filter"):
        text += "; only utterances with " + ", ".join(f"{k}={v}" for k, v in spec["filter"].items())
    if spec.get("script_disjoint"):
        text += ("; script-disjoint: training excludes every utterance whose script (a scripted text "
                 "performed in several sessions) occurs in the test part")
    if spec.get("labels"):
        text += "; " + describe_labels(spec["labels"])
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


def _column(df: pd.DataFrame, col: str, scheme: str) -> pd.Series:
    if col not in df.columns or (df[col].astype(str) == "").all():
        raise ConfigError(f"protocol {scheme}: the manifest has no values in column '{col}' "
                          f"(this corpus cannot use the scheme; try leave_one_group_out or group_kfold "
                          f"over a column it has, such as speaker)")
    blank = df[col].astype(str) == ""
    if blank.any():
        raise CorpusError(f"protocol {scheme}: {int(blank.sum())} utterances have no '{col}' "
                          f"(e.g. {df.loc[blank, 'utt_id'].head(3).tolist()})")
    return df[col].astype(str)


def _fold(name: str, train: pd.DataFrame, val: pd.DataFrame | None, test: pd.DataFrame, **info) -> dict:
    return {"name": name, **info, "train": _ids(train), "val": [] if val is None else _ids(val), "test": _ids(test)}


def _script_disjoint(train: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    scripts = set(held.loc[held["script"] != "", "script"])
    return train[~train["script"].isin(scripts)]


def _session_folds(df: pd.DataFrame, spec: dict) -> list[dict]:
    scheme = spec["scheme"]
    sessions = sorted(_column(df, "session", scheme).unique())
    if len(sessions) < 2:
        raise ConfigError(f"protocol '{scheme}' needs at least 2 sessions, the manifest has {sessions}")
    folds = []
    for sess in sessions:
        held = df[df["session"] == sess]
        train = df[df["session"] != sess]
        if spec.get("script_disjoint"):
            train = _script_disjoint(train, held)
        if scheme == "leave_one_session_out":
            folds.append(_fold(f"f{len(folds) + 1:02d}", train, None, held, test_session=sess))
            continue
        speakers = sorted(held["speaker"].unique())
        if len(speakers) != 2:
            raise ConfigError(f"leave_one_speaker_out needs exactly 2 speakers per session; "
                              f"session {sess} has {speakers} (for other corpora use leave_one_group_out "
                              f"with group: speaker)")
        # swap_validation: each speaker is tested once (2 folds per session); without it the
        # second speaker (M in IEMOCAP's sorted order) is tested and the first validates.
        for test_spk in (speakers if spec.get("swap_validation", True) else speakers[1:]):
            val_spk = [s for s in speakers if s != test_spk][0]
            folds.append(_fold(f"f{len(folds) + 1:02d}", train, held[held["speaker"] == val_spk],
                               held[held["speaker"] == test_spk], test_session=sess,
                               test_speaker=test_spk, val_speaker=val_spk))
    return folds


def _group_folds(df: pd.DataFrame, spec: dict) -> list[dict]:
    scheme, col = spec["scheme"], spec.get("group", "speaker")
    groups_of = _column(df, col, scheme)
    groups = sorted(groups_of.unique())
    if scheme == "leave_one_group_out":
        blocks = [[g] for g in groups]
    else:
        k = int(spec["k"])
        if not 2 <= k <= len(groups):
            raise ConfigError(f"protocol group_kfold: k={k} but the manifest has {len(groups)} '{col}' groups")
        perm = np.random.default_rng(int(spec.get("seed", 0))).permutation(len(groups))
        blocks = [sorted(groups[i] for i in perm[j::k]) for j in range(k)]
    if len(blocks) < 2:
        raise ConfigError(f"protocol {scheme}: need at least 2 '{col}' groups, the manifest has {groups}")
    val_rule = spec.get("validation", "none")
    if val_rule not in VALIDATION_RULES:
        raise ConfigError(f"protocols.*.validation: '{val_rule}' is not one of {list(VALIDATION_RULES)}")
    folds = []
    for i, block in enumerate(blocks):
        held = df[groups_of.isin(block)]
        val_block = blocks[(i + 1) % len(blocks)] if val_rule == "next_group" else []
        val = df[groups_of.isin(val_block)] if val_block else None
        train = df[~groups_of.isin(block) & ~groups_of.isin(val_block)]
        if spec.get("script_disjoint"):
            train = _script_disjoint(train, held)
        info = {"test_group": block if len(block) > 1 else block[0], "group_column": col}
        if col == "speaker" and len(block) == 1:
            info["test_speaker"] = block[0]
        if val_block:
            info["val_group"] = val_block if len(val_block) > 1 else val_block[0]
        folds.append(_fold(f"f{i + 1:02d}", train, val, held, **info))
    return folds


def _predefined_folds(df: pd.DataFrame, spec: dict) -> list[dict]:
    col = spec.get("column", "split")
    split = _column(df, col, "predefined")

    def part(key):
        values = [str(v) for v in (spec.get(key) or [])]
        unknown = sorted(set(values) - set(split))
        if unknown:
            raise CorpusError(f"protocol predefined: {key} names {unknown}, but column '{col}' holds "
                              f"{sorted(set(split))}")
        return df[split.isin(values)]

    train, test = part("train"), part("test")
    val = part("val") if spec.get("val") else None
    if spec.get("val_speakers"):
        if val is not None:
            raise ConfigError("protocol predefined: give val or val_speakers, not both")
        wanted = [str(s) for s in spec["val_speakers"]]
        missing = sorted(set(wanted) - set(train["speaker"]))
        if missing:
            raise CorpusError(f"protocol predefined: val_speakers {missing} are not training speakers")
        val = train[train["speaker"].isin(wanted)]
        train = train[~train["speaker"].isin(wanted)]
    if spec.get("script_disjoint"):
        train = _script_disjoint(train, test)
    return [_fold("f01", train, val, test, test_split=spec["test"])]


BUILDERS = {
    "leave_one_session_out": _session_folds,
    "leave_one_speaker_out": _session_folds,
    "leave_one_group_out": _group_folds,
    "group_kfold": _group_folds,
    "predefined": _predefined_folds,
}


def make_folds(df: pd.DataFrame, spec: dict) -> list[dict]:
    """Folds of utterance ids (no label mapping: see :func:`build_fold_file`)."""
    scheme = spec.get("scheme")
    if scheme not in SCHEMES:
        raise ConfigError(f"protocols.*.scheme: '{scheme}' is not one of {sorted(SCHEMES)}")
    return BUILDERS[scheme](apply_filter(df, spec.get("filter")), spec)


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


def _check_parts(folds: list[dict], classes: list[str], label_of: dict, where: str) -> list[str]:
    """Errors for empty parts and classes missing from training/test; notes for validation."""
    notes = []
    for f in folds:
        for part in ("train", "test"):
            if not f[part]:
                raise CorpusError(f"{where}: fold {f['name']} has an empty {part} part "
                                  f"(filters, script-disjointness or the label mapping removed every utterance)")
        counts = {p: {c: 0 for c in classes} for p in ("train", "val", "test")}
        for p in counts:
            for u in f[p]:
                counts[p][label_of[u]] += 1
        f["class_counts"] = counts
        for part in ("train", "test"):
            missing = [c for c, n in counts[part].items() if n == 0]
            if missing:
                raise CorpusError(f"{where}: fold {f['name']} has no {part} utterance of classes {missing} "
                                  f"(counts {counts[part]})")
        missing = [c for c, n in counts["val"].items() if n == 0]
        if f["val"] and missing:
            notes.append(f"fold {f['name']}: the validation part has no utterance of {missing}; "
                         f"its UA averages over the other classes")
    return notes


def build_fold_file(df: pd.DataFrame, spec: dict, corpus: str, protocol: str,
                    expected_folds: int | None = None) -> dict:
    """The fold file's content: folds, label mapping and counts, all checks passed."""
    where = f"corpus {corpus}, protocol {protocol}"
    labels = label_spec(spec.get("labels"))
    mapped, report = map_labels(df, labels, where)
    kept = df.assign(label=mapped)[mapped.notna()]
    folds = make_folds(kept, spec)
    if expected_folds is not None and len(folds) != expected_folds:
        raise CorpusError(f"{where}: {len(folds)} folds but the job graph expects {expected_folds} "
                          f"(set the group count of corpora.{corpus}: n_sessions / groups)")
    check_leakage(folds, kept, bool(spec.get("script_disjoint")))
    used = sorted({u for f in folds for p in ("train", "val", "test") for u in f[p]})
    label_of = dict(zip(kept["utt_id"], kept["label"]))
    notes = _check_parts(folds, labels["classes"], label_of, where)
    return {
        "corpus": corpus,
        "protocol": protocol,
        "spec": spec,
        "description": describe({**spec, "labels": labels}),
        "labels": labels,
        "label_report": report,
        "manifest_sha256": hashlib.sha256(
            json.dumps(sorted(zip(df["utt_id"], df["speaker"], df[labels["column"]]))).encode()).hexdigest(),
        "notes": notes,
        "label_of": {u: label_of[u] for u in used},
        "folds": folds,
    }


def write_fold_file(df: pd.DataFrame, spec: dict, path, corpus: str, protocol: str,
                    expected_folds: int | None = None) -> dict:
    """Checks run before anything is written, so a refused split never leaves a file behind."""
    doc = build_fold_file(df, spec, corpus, protocol, expected_folds)
    write_json(path, doc)
    return doc


def summarise_folds(doc: dict) -> str:
    """One line per fold (who is tested, part sizes, class counts) plus the label report."""
    lines = [f"{doc['description']}",
             "labels: " + ", ".join(f"{k} {v['n']}" + (f"->{v['kept_as']}" if v["kept_as"] else " dropped")
                                    for k, v in doc["label_report"].items())]
    for f in doc["folds"]:
        who = f.get("test_speaker") or f.get("test_session") or f.get("test_group") or f.get("test_split")
        lines.append(f"{f['name']}: test {who} train {len(f['train'])} val {len(f['val'])} test {len(f['test'])} "
                     f"classes train {f['class_counts']['train']} test {f['class_counts']['test']}")
    lines += [f"note: {n}" for n in doc.get("notes", [])]
    return "\n".join(lines)


def read_fold_file(path) -> dict:
    with open(path) as f:
        doc = json.load(f)
    if "label_of" not in doc or "labels" not in doc:
        raise CorpusError(f"{path}: fold file of an older version (no label mapping); delete it and rerun")
    return doc


def subsample_per_class(ids: list[str], labels: list[str], per_class, seed: int) -> list[str]:
    """Exactly ``per_class`` training utterances of each class (all of a smaller class), by seed.

    ``per_class`` is an int or "full". Sampling uses only the ids given (the fold's training
    part), so test sessions are never touched. A class with fewer utterances keeps all of
    them; :func:`clamped_classes` says which, and the result file reports it.
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


def clamped_classes(labels: list[str], per_class) -> dict[str, int]:
    """{class: available} for classes with fewer training utterances than ``per_class`` asks."""
    if per_class in (None, "full"):
        return {}
    counts = pd.Series(labels).value_counts().to_dict()
    return {c: int(n) for c, n in sorted(counts.items()) if n < int(per_class)}

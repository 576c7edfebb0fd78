"""Which labels an experiment uses, decided per protocol, never by the corpus loader.

The manifest keeps every labelled utterance with the corpus's own label; a protocol says
which manifest column holds its labels, which raw labels merge into which class
(IEMOCAP's ``exc`` into ``hap`` for Boigne et al. and Li et al., not for Ma et al. or
Triantafyllopoulos et al.) and which classes it keeps. One manifest and one feature
extraction then serve every label set.

Every decision is counted and reported: how many utterances of each raw label were kept,
and as what. A configured class that no utterance maps to (a typo such as ``angry`` for
``ang``), or a mapping that drops most of the corpus, stops the run with the numbers,
because either would otherwise train on fewer classes than the table claims.
"""
from __future__ import annotations

import pandas as pd

from ser_pipeline.errors import ConfigError, CorpusError

DEFAULT_MAX_DROPPED = 0.6


def label_spec(spec: dict | None) -> dict:
    """Fill defaults: column ``label``, no merging, the dropped-share limit."""
    spec = dict(spec or {})
    if not spec.get("classes"):
        raise ConfigError("labels.classes: a protocol must list the classes it keeps")
    classes = [str(c) for c in spec["classes"]]
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ConfigError(f"labels.classes: need at least 2 distinct classes, got {classes}")
    merge = {str(k): str(v) for k, v in (spec.get("merge") or {}).items()}
    bad = {k: v for k, v in merge.items() if v not in classes}
    if bad:
        raise ConfigError(f"labels.merge: {bad} maps to labels that are not in classes {classes}")
    return {"column": spec.get("column", "label"), "merge": merge, "classes": classes,
            "max_dropped_share": float(spec.get("max_dropped_share", DEFAULT_MAX_DROPPED))}


def map_labels(df: pd.DataFrame, spec: dict, where: str = "manifest") -> tuple[pd.Series, dict]:
    """Each row's class (NaN where dropped) and a report {raw label: {"n", "kept_as"}}.

    Raises CorpusError, naming the numbers, when a class gets no utterance or when more
    than ``max_dropped_share`` of the rows would be dropped.
    """
    spec = label_spec(spec)
    col = spec["column"]
    if col not in df.columns:
        raise ConfigError(f"labels.column: {where} has no column '{col}' (columns: {list(df.columns)})")
    raw = df[col].astype(str)
    mapped = raw.map(lambda v: spec["merge"].get(v, v if v in spec["classes"] else None))
    counts = raw.value_counts()
    report = {lab: {"n": int(n), "kept_as": spec["merge"].get(lab, lab if lab in spec["classes"] else None)}
              for lab, n in counts.sort_index().items()}
    per_class = mapped.value_counts()
    empty = [c for c in spec["classes"] if per_class.get(c, 0) == 0]
    table = ", ".join(f"{lab} {r['n']}" + (f"->{r['kept_as']}" if r["kept_as"] else " dropped")
                      for lab, r in report.items())
    if empty:
        raise CorpusError(f"{where}: classes {empty} have no utterance (column '{col}' holds: {table}); "
                          f"check labels.classes / labels.merge for a typo")
    dropped = int(mapped.isna().sum())
    if len(df) and dropped / len(df) > spec["max_dropped_share"]:
        raise CorpusError(f"{where}: the label mapping drops {dropped} of {len(df)} utterances "
                          f"({100 * dropped / len(df):.0f}% > {100 * spec['max_dropped_share']:.0f}%): {table}. "
                          f"If that is intended, raise labels.max_dropped_share")
    return mapped, report


def describe_labels(spec: dict) -> str:
    spec = label_spec(spec)
    text = f"classes {', '.join(spec['classes'])} (column `{spec['column']}`)"
    if spec["merge"]:
        text += "; merged: " + ", ".join(f"{k} -> {v}" for k, v in spec["merge"].items())
    return text

"""What the open-corpus loaders (RAVDESS, CREMA-D, EmoDB) share.

Label maps as data: cross-corpus experiments (train on RAVDESS, test on IEMOCAP) need both corpora in one label
set. Each corpus module publishes its full label set and named maps such as
``TO_IEMOCAP4``, in which every source label appears, mapped either to a target class or
explicitly to ``None`` ("no counterpart, drop"). A loader option ``label_map`` then picks a
map by name or takes one from the config, so the choice is a config entry, not code.
"""
from __future__ import annotations

import logging

import pandas as pd

from ser_pipeline.audio import audio_info
from ser_pipeline.errors import AudioError, ConfigError, CorpusError, listing

log = logging.getLogger(__name__)

IEMOCAP4 = ("neu", "hap", "sad", "ang")
ORIGINAL_COLUMN = "label_original"
"""When a map is applied, the corpus's own label is kept here."""


def check_map(corpus: str, labels, mapping: dict, name: str = "label_map") -> dict:
    """``mapping`` if it maps exactly the corpus's labels; a ConfigError naming the gaps otherwise."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{name} of corpus '{corpus}': expected a mapping {{source label: target or null}}, "
                          f"got {type(mapping).__name__}")
    missing = [lab for lab in labels if lab not in mapping]
    unknown = [lab for lab in mapping if lab not in labels]
    if missing or unknown:
        raise ConfigError(f"{name} of corpus '{corpus}': every label must be mapped (to a class or to null); "
                          f"missing {missing}, not labels of the corpus {unknown}; labels are {list(labels)}")
    bad = [k for k, v in mapping.items() if v is not None and (not isinstance(v, str) or not v.strip())]
    if bad:
        raise ConfigError(f"{name} of corpus '{corpus}': targets of {bad} must be class names or null")
    return dict(mapping)


def apply_label_map(df: pd.DataFrame, corpus: str, labels, maps: dict, label_map) -> pd.DataFrame:
    """Rows of ``df`` relabelled by ``label_map`` (None, a name in ``maps`` or a dict).

    Rows whose label maps to ``None`` are dropped and counted in a log warning; the
    original label stays in ``label_original``.
    """
    if label_map is None:
        return df
    if isinstance(label_map, str):
        if label_map not in maps:
            raise ConfigError(f"label_map of corpus '{corpus}': '{label_map}' unknown; "
                              f"named maps are {sorted(maps)} (or give a mapping)")
        mapping = maps[label_map]
    else:
        mapping = label_map
    mapping = check_map(corpus, labels, mapping)
    df = df.copy()
    df[ORIGINAL_COLUMN] = df["label"]
    df["label"] = df["label"].map(mapping)
    dropped = df["label"].isna()
    if dropped.any():
        counts = df.loc[dropped, ORIGINAL_COLUMN].value_counts().sort_index()
        log.warning("%s: label_map drops %d of %d utterances (%s)", corpus, int(dropped.sum()), len(df),
                    ", ".join(f"{lab} {n}" for lab, n in counts.items()))
    df = df[~dropped]
    if df.empty:
        raise ConfigError(f"label_map of corpus '{corpus}' maps every utterance to null")
    return df


def header_columns(path) -> dict:
    """``duration``, ``source_sr`` and ``source_channels`` of one file, from its header only."""
    info = audio_info(path)
    return {"duration": info.duration, "source_sr": float(info.sample_rate),
            "source_channels": float(info.channels)}


def add_header_columns(rows: list[dict], corpus: str) -> None:
    """Fill the header columns of every row; unreadable files are collected into one error."""
    bad = []
    for row in rows:
        try:
            row.update(header_columns(row["audio_path"]))
        except AudioError as e:
            bad.append(str(e))
    if bad:
        raise CorpusError(f"{corpus}: {len(bad)} audio file(s) cannot be read:" + listing(bad))


def compare_counts(corpus: str, root, found: dict, expected: dict, what: str, enforce: bool,
                 detail: str = "") -> bool:
    """Compare ``found`` with ``expected`` counts per group (e.g. per actor); True when equal.

    With ``enforce`` a difference is a CorpusError naming every group that differs (a corpus
    copy that lost a folder still trains, and only gives slightly wrong numbers); without, it
    is a logged warning, for deliberately partial copies.
    """
    diff = {k: (found.get(k, 0), expected.get(k, 0)) for k in sorted(set(found) | set(expected))
            if found.get(k, 0) != expected.get(k, 0)}
    if not diff:
        return True
    shown = ", ".join(f"{k}: {f} of {e}" for k, (f, e) in list(diff.items())[:20])
    more = f" and {len(diff) - 20} more" if len(diff) > 20 else ""
    msg = (f"{corpus} at {root}: expected {sum(expected.values())} {what}, found {sum(found.values())}; "
           f"differences ({what} found of expected): {shown}{more}{detail}")
    if enforce:
        raise CorpusError(msg + ". The copy is incomplete or modified; pass check_counts=False to use a partial copy")
    log.warning("%s (check_counts is off)", msg)
    return False

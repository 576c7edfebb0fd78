"""The one manifest format every corpus loader produces: one row per utterance.

Downstream stages (segmenting, feature extraction, folds, training) only ever see this
table, so adding a corpus means writing one loader that returns it.
"""
from __future__ import annotations

import pandas as pd

from ser_pipeline.atomic import atomic_path
from ser_pipeline.errors import CorpusError

COLUMNS = {
    "utt_id": str,       # unique within the corpus
    "corpus": str,
    "audio_path": str,   # absolute path of the wav holding the utterance
    "start": float,      # seconds into audio_path; NaN when the file is the utterance
    "end": float,        # seconds; NaN when the file is the utterance
    "speaker": str,      # globally unique within the corpus (e.g. Ses01M)
    "session": str,
    "gender": str,       # "F", "M" or "" when unknown
    "label": str,        # class name after mapping (e.g. hap for happy+excited)
    "text": str,         # transcription, "" when none
    "duration": float,   # seconds
    "mode": str,         # corpus-specific: improvised/scripted for IEMOCAP, "" otherwise
    "script": str,       # id of a scripted text performed in several sessions, "" otherwise
    "split": str,        # official partition (e.g. train/valid/test), "" when the corpus has none
}
REQUIRED = ("utt_id", "audio_path", "speaker", "label")
# Loader-specific columns may follow the standard ones, named by kind so every stage reads
# them with the right type: label_<name> (another label set of the same utterance, e.g.
# FAU-AIBO's 2-class labels), rating_<name> (a numeric annotation, e.g. CMU-MOSEI's emotion
# ratings) and source_<name> (a property of the original file, e.g. its sample rate).
EXTRA_PREFIXES = {"label_": str, "rating_": float, "source_": float}


def extra_columns(columns) -> list[str]:
    return [c for c in columns if c not in COLUMNS and c.startswith(tuple(EXTRA_PREFIXES))]


def _extra_type(col: str):
    return next(t for pre, t in EXTRA_PREFIXES.items() if col.startswith(pre))


def normalise(df: pd.DataFrame, corpus: str) -> pd.DataFrame:
    """Fill optional columns, fix dtypes and order, and check the required ones.

    Columns that are neither standard nor named ``label_*``/``rating_*``/``source_*`` are an
    error rather than silently dropped, so a loader's typo cannot lose data.
    """
    df = df.copy()
    unknown = [c for c in df.columns if c not in COLUMNS and c not in extra_columns([c])]
    if unknown:
        raise CorpusError(f"manifest of corpus '{corpus}': unknown columns {unknown}; standard ones are "
                          f"{list(COLUMNS)}, extra ones must start with {list(EXTRA_PREFIXES)}")
    for col in REQUIRED:
        if col not in df.columns:
            raise CorpusError(f"manifest of corpus '{corpus}' has no '{col}' column")
        missing = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if missing.any():
            bad = df.loc[missing, "utt_id" if col != "utt_id" else "audio_path"].astype(str).head(5).tolist()
            raise CorpusError(f"corpus '{corpus}': {int(missing.sum())} rows have no {col} (e.g. {bad})")
    df["corpus"] = corpus
    for col, typ in COLUMNS.items():
        if col not in df.columns:
            df[col] = float("nan") if typ is float else ""
        if typ is str:
            df[col] = df[col].fillna("").astype(str)
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    extras = sorted(extra_columns(df.columns))
    for col in extras:
        if _extra_type(col) is str:
            df[col] = df[col].fillna("").astype(str)
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    dup = df["utt_id"].duplicated()
    if dup.any():
        raise CorpusError(f"corpus '{corpus}': duplicate utt_id {df.loc[dup, 'utt_id'].head(5).tolist()}")
    return df[list(COLUMNS) + extras].sort_values("utt_id").reset_index(drop=True)


def write_manifest(df: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def read_manifest(path) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0).columns
    types = {**COLUMNS, **{c: _extra_type(c) for c in extra_columns(header)}}
    dtypes = {c: ("string" if t is str else float) for c, t in types.items() if c in header}
    floats = [c for c, t in types.items() if t is float]
    df = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={c: [""] for c in floats})
    for c, t in types.items():
        if t is str and c in df.columns:
            df[c] = df[c].fillna("").astype(str)
    return df

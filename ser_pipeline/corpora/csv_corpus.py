"""Any corpus described by a CSV (one row per utterance) to the manifest.

This is the escape hatch for corpora without a dedicated loader: write a CSV with at least
``path, speaker, label`` and the rest of the pipeline treats it like IEMOCAP. Errors name
the CSV line (header = line 1) so a user can fix the file directly.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ser_pipeline.audio import SEGMENT_TOLERANCE, audio_info
from ser_pipeline.corpora import register_loader
from ser_pipeline.errors import AudioError, ConfigError, CorpusError
from ser_pipeline.manifest import normalise

INPUT_COLUMNS = ("path", "speaker", "label", "utt_id", "session", "text", "start", "end",
                 "gender", "mode", "script")
REQUIRED_COLUMNS = ("path", "speaker", "label")
_GENDERS = {"f": "F", "female": "F", "w": "F", "woman": "F",
            "m": "M", "male": "M", "man": "M", "": ""}


def input_files(csv_path, **_options) -> list[Path]:
    """The CSV is the corpus's label file: editing it reruns the manifest."""
    return [Path(csv_path)]


@register_loader("csv")
def prepare_csv_corpus(csv_path, audio_root=None, column_map=None, name: str | None = None) -> pd.DataFrame:
    """Manifest of the utterances listed in ``csv_path``.

    ``column_map`` renames CSV columns to ours, like ``DataFrame.rename``:
    ``{"wav": "path", "emotion": "label"}``. Relative paths are resolved against
    ``audio_root`` (default: the CSV's folder) so a corpus folder can be moved as a whole.
    ``name`` is the manifest's corpus name (default: the CSV file name without extension).
    """
    csv_path = Path(csv_path)
    df = _read(csv_path, column_map or {})
    lines = pd.Series(range(2, len(df) + 2), index=df.index)  # CSV line numbers, header = 1

    def fail(mask, what):
        if mask.any():
            shown = ", ".join(f"line {lines[i]}" for i in df.index[mask][:10])
            more = f" and {int(mask.sum()) - 10} more" if mask.sum() > 10 else ""
            raise CorpusError(f"{csv_path}: {what} ({shown}{more})")

    for col in REQUIRED_COLUMNS:
        fail(df[col] == "", f"empty '{col}'")
    root = Path(audio_root) if audio_root is not None else csv_path.parent
    paths = [p if p.is_absolute() else root / p for p in map(Path, df["path"])]
    df["audio_path"] = [str(p.resolve()) for p in paths]
    exists = pd.Series([p.is_file() for p in paths], index=df.index)
    if not exists.all():
        bad = [f"line {lines[i]}: {df.at[i, 'audio_path']}" for i in df.index[~exists][:10]]
        raise CorpusError(f"{csv_path}: {int((~exists).sum())} audio file(s) not found:\n  " + "\n  ".join(bad))

    df["utt_id"] = df["utt_id"].where(df["utt_id"] != "", [p.stem for p in paths])
    dup = df["utt_id"].duplicated(keep=False)
    fail(dup, "utt_id not unique (default is the file name without extension; add an utt_id column)")
    df["session"] = df["session"].where(df["session"] != "", df["speaker"])
    gender = df["gender"].str.lower().map(_GENDERS)
    fail(gender.isna(), "gender must be F/M (or female/male) or empty")
    df["gender"] = gender
    _add_times(df, fail, csv_path)
    return normalise(df.drop(columns=["path"]), name or csv_path.stem)


def _read(csv_path: Path, column_map: dict) -> pd.DataFrame:
    if not csv_path.is_file():
        raise CorpusError(f"{csv_path}: corpus CSV does not exist")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise CorpusError(f"{csv_path}: cannot be read as CSV ({e})") from None
    absent = [c for c in column_map if c not in df.columns]
    if absent:
        raise CorpusError(f"{csv_path}: column_map names columns {absent} that the CSV lacks "
                          f"(it has {list(df.columns)})")
    unknown = [v for v in column_map.values() if v not in INPUT_COLUMNS]
    if unknown:
        raise ConfigError(f"column_map: targets {unknown} are not corpus columns {list(INPUT_COLUMNS)}")
    df = df.rename(columns=column_map)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise CorpusError(f"{csv_path}: required column(s) {missing} missing (it has {list(df.columns)}); "
                          f"rename them or pass column_map")
    df = df[[c for c in df.columns if c in INPUT_COLUMNS]].copy()
    for col in INPUT_COLUMNS:
        df[col] = df[col].str.strip() if col in df.columns else ""
    return df


def _add_times(df: pd.DataFrame, fail, csv_path: Path) -> None:
    """start/end (seconds) for segments of longer files; duration from them or the header.

    Every file's header is read once (cheap): it gives ``source_sr``/``source_channels``
    (the audio is converted to the pipeline rate on read) and lets a segment that runs past
    the end of its file fail here, naming the CSV line, rather than in a feature job.
    """
    for col in ("start", "end"):
        value = pd.to_numeric(df[col].where(df[col] != ""), errors="coerce")
        fail(value.isna() & (df[col] != ""), f"'{col}' is not a number")
        df[col] = value
    fail(df["start"].isna() != df["end"].isna(), "only one of start/end given")
    fail(df["start"] < 0, "start is negative")
    fail(df["end"] <= df["start"], "end is not after start")
    durations, rates, channels, lengths = [], [], [], []
    for i, row in df.iterrows():
        try:
            info = audio_info(row["audio_path"])
        except AudioError as e:
            raise CorpusError(f"{csv_path}: line {i + 2}: {e}") from None
        rates.append(float(info.sample_rate))
        channels.append(float(info.channels))
        lengths.append(info.duration)
        durations.append(row["end"] - row["start"] if pd.notna(row["start"]) else info.duration)
    df["duration"] = durations
    df["source_sr"] = rates
    df["source_channels"] = channels
    fail(df["end"] > pd.Series(lengths, index=df.index) + SEGMENT_TOLERANCE,
         f"segment ends after the end of its audio file (more than {SEGMENT_TOLERANCE} s)")

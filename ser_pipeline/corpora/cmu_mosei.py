"""CMU-MOSEI to the manifest: the labelled sentences of the full-length video wavs.

Layout read (the ``Raw`` tree of CMU_MOSEI.zip plus the labels file)::

    <root>/CMU_MOSEI_Labels.csd                      (or Raw/Labels/, Labels/, or labels_file=)
    <root>/Raw/Audio/Full/WAV_16000/<video>.wav
    <root>/Raw/Transcript/Segmented/Combined/<video>.txt   video___clip___start___end___text

**Labels** are read with h5py (no SDK): ``All Labels/data/<video>/features`` (N x 7:
sentiment, happy, sad, anger, surprise, disgust, fear, the order in the SDK's CMU_MOSEI
README and its ``dimension names`` metadata, which is checked when present) and
``.../intervals`` (N x 2 seconds into the full video). Sentiment lies in [-3, 3], emotions in
[0, 3] (averages over raters, so 0.333 steps); several emotions can be present at once.

**Segment identity.** A segment is (video, row index in ``intervals``) and its utt_id is
``<video>[<row>]``, the SDK's naming. Rows are not in time order in about 1,318 videos, so
the row index is *not* the transcript's clip number; transcripts are matched to rows by
exact start/end (compared in the .csd's float precision), never by clip number. A row
without a matching transcript line keeps text "" and is counted in the report.

**Times.** 239 segments start before 0 s; they are clipped to 0 and counted. An end past the
end of the wav by at most ``end_tolerance`` seconds is clipped and counted; further is an
error naming the segments.

**Speaker.** MOSEI's labels carry no speaker id. speaker = the video id: every video is a
single-speaker monologue, but one person can appear in several videos, so video-disjoint
splits are not guaranteed to be speaker-disjoint. session and gender are "".

**Label.** "neu" when all six emotion ratings are 0, else the highest-rated of hap, sad,
ang, sur, dis, fea; ties go to the earlier .csd column (happy before sad before anger ...),
which is what numpy's argmax over the columns does. The ratings themselves are kept as
``rating_sentiment`` and ``rating_<emotion>`` columns: they, not ``label``, are what the
multi-label protocols and Li et al.'s rule (:func:`li2020_subset`, :func:`li2020_correct`)
use.

**Standard folds** (``split`` = train/valid/test, "" for a video in no fold) come from the
SDK's ``cmu_mosei_std_folds.py`` (``standard_train_fold``/``standard_valid_fold``/
``standard_test_fold`` lists of video ids: 2,249/300/678 in the official repository,
github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK, file
mmsdk/mmdatasdk/dataset/standard_datasets/CMU_MOSEI/cmu_mosei_std_folds.py). The lists are
not shipped with this package (they are the SDK's data). They are looked up, first found
wins: ``folds_file`` (that .py file, parsed with ``ast`` and never executed, or a JSON/YAML
of ``{train: [...], valid: [...], test: [...]}``); ``<root>/cmu_mosei_std_folds.py``; the
file inside an installed ``mmsdk`` package (located without importing it). Without any,
every ``split`` is "" and the report and a warning say so. The PyPI package
``cmu-multimodal-sdk`` 0.0.6 (a third-party copy) ships a train list with one extra video
(2,250 ids): its lists are accepted but reported as not the official ones, and the per-fold
counts are then not checked; install the official SDK
(``pip install git+https://github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK``) or pass its
file as ``folds_file`` to get them checked.

**Counts.** With ``check_standard_counts`` and a labels file of the standard 3,293 videos,
these are asserted exactly: 23,259 labelled segments, 239 negative starts, and (official
fold lists only) 16,327 train / 1,871 valid / 4,662 test / 399 in no fold. We counted them
from s3prl's ``CMU_MOSEI_Labels.csv`` (s3prl/downstream/mosei/utility, one row per
(video, row) of CMU_MOSEI_Labels.csd with start/end and fold) joined with the official fold
lists: the figures depend on nothing but the labels file and the lists. Two test-fold ids
(7l3BNtSE0xc, dZFV0lyedX4) have no labels (SDK issue 256) and are reported. Li et al.'s
subset size (22,323 in the paper) is only reported next to ours: no public file lets us
recompute it, and the paper does not say which labels-file version it used. A labels file
with another number of videos is taken to be a subset or a different release: counts are
then not checked, with a warning.

The loader's findings (clipped times, unmatched transcripts, fold source, counts) are logged
and returned in ``df.attrs["report"]``.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ser_pipeline.corpora import register_eval_rule, register_loader
from ser_pipeline import SAMPLE_RATE
from ser_pipeline.audio import headers_at_rate
from ser_pipeline.errors import ConfigError, CorpusError, listing
from ser_pipeline.manifest import normalise

log = logging.getLogger(__name__)

CORPUS = "cmu_mosei"
LABELS_NAME = "CMU_MOSEI_Labels.csd"
LABELS_GROUP = "All Labels"
WAV_DIR = ("Audio", "Full", "WAV_16000")
TRANSCRIPT_DIR = ("Transcript", "Segmented", "Combined")
FOLDS_NAME = "cmu_mosei_std_folds.py"
SDK_FOLDS_PATH = ("mmdatasdk", "dataset", "standard_datasets", "CMU_MOSEI", FOLDS_NAME)

DIMENSIONS = ("sentiment", "happy", "sad", "anger", "surprise", "disgust", "fear")
EMOTIONS = DIMENSIONS[1:]
EMOTION_CODES = ("hap", "sad", "ang", "sur", "dis", "fea")  # same order as EMOTIONS
RATING_COLUMNS = tuple(f"rating_{d}" for d in DIMENSIONS)
EMOTION_COLUMNS = RATING_COLUMNS[1:]
SENTIMENT_RANGE, EMOTION_RANGE = (-3.0, 3.0), (0.0, 3.0)
RANGE_EPS = 1e-6
SPLITS = ("train", "valid", "test")

# Counted from s3prl's CMU_MOSEI_Labels.csv (see the module docstring).
STANDARD_VIDEOS = 3293
STANDARD_SEGMENTS = 23259
STANDARD_NEGATIVE_STARTS = 239
STANDARD_SPLIT_SEGMENTS = {"train": 16327, "valid": 1871, "test": 4662, "": 399}
OFFICIAL_FOLD_SIZES = {"train": 2249, "valid": 300, "test": 678}
# folds_digest() of the official lists (CMU-MultiComp-Lab/CMU-MultimodalSDK, commit 3e27d37).
OFFICIAL_FOLDS_SHA256 = "5d351dbab07cff37de4445692798ed3dd1bf4a4401e3ff1c8a73e7003a41f1a6"
LI2020_SUBSET_PAPER = 22323  # Li et al. 2020, Sec. 4 "Evaluation on CMU-MOSEI"; reported only

# Li et al.: the IEMOCAP classes and the rating that makes each prediction correct.
LI2020_CLASSES = {"neu": None, "hap": "rating_happy", "sad": "rating_sad", "ang": "rating_anger"}


@register_loader("cmu_mosei")
def prepare_cmu_mosei(root, labels_file=None, folds_file=None, check_standard_counts: bool = True,
                      allow_missing_audio: bool = False, allow_out_of_range: bool = False,
                      end_tolerance: float = 0.1) -> pd.DataFrame:
    """Manifest of every labelled CMU-MOSEI segment (see the module docstring).

    ``allow_missing_audio`` drops (and counts) the segments of videos without a wav instead
    of stopping; ``allow_out_of_range`` does the same for segments whose ratings fall
    outside [-3, 3] / [0, 3]. Both are off by default: a silent gap would change results.
    """
    if not isinstance(end_tolerance, (int, float)) or isinstance(end_tolerance, bool) or end_tolerance < 0:
        raise ConfigError(f"end_tolerance: must be a number of seconds >= 0, got {end_tolerance!r}")
    root = Path(root)
    raw = _raw_dir(root)
    labels_path = _labels_path(root, labels_file)
    report: dict = {"labels_file": str(labels_path), "notes": []}
    segments = _read_labels(labels_path, report)
    rows, out_of_range = _rows(segments, labels_path)
    report.update(videos=len(segments), segments=len(rows), negative_starts=sum(r["raw_start"] < 0 for r in rows))
    folds, source = _find_folds(root, folds_file)
    _assign_splits(rows, segments, folds, source, report)
    if out_of_range:
        _handle_out_of_range(out_of_range, labels_path, allow_out_of_range, report)
    if check_standard_counts:
        _check_counts(segments, report, labels_path)
    if out_of_range:
        bad = {(v, i) for v, i, _ in out_of_range}
        rows = [r for r in rows if (r["video"], r["row"]) not in bad]
    rows = _add_audio(rows, raw, allow_missing_audio, end_tolerance, report)
    _add_text(rows, raw, segments, report)
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in ("video", "row", "raw_start", "raw_end")}
                       for r in rows])
    if df.empty:
        raise CorpusError(f"{labels_path}: no usable labelled segment")
    df = normalise(df, CORPUS)
    report["li2020_subset"] = int(len(li2020_subset(df)))
    report["li2020_subset_paper"] = LI2020_SUBSET_PAPER
    report["labels"] = {k: int(v) for k, v in df["label"].value_counts().sort_index().items()}
    _log_report(report)
    df.attrs["report"] = report
    return df


# ---------------------------------------------------------------- Li et al. (2020)

def li2020_subset(df: pd.DataFrame) -> pd.DataFrame:
    """Li et al.'s CMU-MOSEI evaluation set: a positive happy, sad or anger rating, or all six
    emotion ratings zero (neutral). 22,323 segments in the paper. Index reset."""
    r = _ratings(df)
    keep = (r["rating_happy"] > 0) | (r["rating_sad"] > 0) | (r["rating_anger"] > 0) | (r == 0).all(axis=1)
    return df.loc[keep.to_numpy()].reset_index(drop=True)


def li2020_correct(df: pd.DataFrame, predicted_labels) -> np.ndarray:
    """Li et al.'s scoring of 4-class (neu/hap/sad/ang) predictions on CMU-MOSEI segments.

    A prediction is correct when the predicted emotion's rating is positive; "neu" is correct
    when all six emotion ratings are zero. So a segment rated both happy and sad accepts either
    answer. Returns one bool per row of ``df``.
    """
    pred = np.asarray(predicted_labels, dtype=object)
    if pred.shape != (len(df),):
        raise ValueError(f"li2020_correct: {pred.shape[0] if pred.ndim else 0} predictions for {len(df)} segments")
    unknown = sorted({str(p) for p in pred} - set(LI2020_CLASSES))
    if unknown:
        raise ConfigError(f"li2020_correct: predicted labels {unknown} are not among Li et al.'s classes "
                          f"{list(LI2020_CLASSES)}")
    r = _ratings(df)
    neutral = (r == 0).all(axis=1).to_numpy()
    correct = np.zeros(len(df), dtype=bool)
    for label, col in LI2020_CLASSES.items():
        chosen = pred == label
        correct[chosen] = neutral[chosen] if col is None else (r[col].to_numpy()[chosen] > 0)
    return correct


def _ratings(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in EMOTION_COLUMNS if c not in df.columns]
    if missing:
        raise CorpusError(f"not a CMU-MOSEI manifest: columns {missing} missing")
    r = df[list(EMOTION_COLUMNS)].astype(float)
    if not np.isfinite(r.to_numpy()).all():
        bad = df.loc[~np.isfinite(r.to_numpy()).all(axis=1), "utt_id"].head(5).tolist()
        raise CorpusError(f"CMU-MOSEI manifest: non-finite emotion ratings (e.g. {bad})")
    return r


def emotion_labels(ratings: np.ndarray) -> np.ndarray:
    """Single labels from an (N, 6) array of emotion ratings in .csd column order."""
    ratings = np.asarray(ratings, dtype=float)
    best = np.array(EMOTION_CODES, dtype=object)[np.argmax(ratings, axis=1)]
    return np.where((ratings == 0).all(axis=1), "neu", best).astype(str)


# ---------------------------------------------------------------- folds

def load_folds(path) -> dict[str, list[str]]:
    """The three standard fold lists from the SDK's .py file (parsed, never run) or a
    JSON/YAML mapping with keys train/valid/test (or standard_<fold>_fold)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: folds file does not exist")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".py":
        try:
            tree = ast.parse(text, filename=str(path))
        except SyntaxError as e:
            raise CorpusError(f"{path}: not parseable Python ({e})") from None
        found = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if name in {f"standard_{s}_fold" for s in SPLITS}:
                    try:
                        found[name] = ast.literal_eval(node.value)
                    except ValueError:
                        raise CorpusError(f"{path}:{node.lineno}: {name} is not a literal list") from None
        raw = found
    elif path.suffix in (".json", ".yaml", ".yml"):
        try:
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as e:
            raise CorpusError(f"{path}: cannot parse folds ({e})") from None
        if not isinstance(raw, dict):
            raise CorpusError(f"{path}: expected a mapping of fold name to video ids")
    else:
        raise CorpusError(f"{path}: folds file must be the SDK's .py or a .json/.yaml mapping")
    folds = {}
    for s in SPLITS:
        ids = raw.get(s, raw.get(f"standard_{s}_fold"))
        if not isinstance(ids, (list, tuple, set)) or not all(isinstance(v, str) for v in ids):
            raise CorpusError(f"{path}: no list of video ids for fold '{s}' "
                              f"(expected standard_{s}_fold or {s})")
        folds[s] = sorted(set(ids))
    seen: dict[str, str] = {}
    for s in SPLITS:
        clash = [v for v in folds[s] if v in seen]
        if clash:
            raise CorpusError(f"{path}: videos in two folds ({seen[clash[0]]} and {s}): {clash[:5]}")
        seen.update(dict.fromkeys(folds[s], s))
    return folds


def folds_digest(folds: dict[str, list[str]]) -> str:
    text = "\n".join(f"{s}:{','.join(sorted(folds[s]))}" for s in SPLITS)
    return hashlib.sha256(text.encode()).hexdigest()


def _find_folds(root: Path, folds_file):
    if folds_file:
        return load_folds(folds_file), str(folds_file)
    for candidate in (root / FOLDS_NAME, _installed_sdk_folds()):
        if candidate is not None and candidate.is_file():
            return load_folds(candidate), str(candidate)
    return None, None


def _installed_sdk_folds() -> Path | None:
    """The fold file inside an installed mmsdk package; find_spec does not import it."""
    try:
        spec = importlib.util.find_spec("mmsdk")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location).joinpath(*SDK_FOLDS_PATH)
        if path.is_file():
            return path
    return None


def _assign_splits(rows, segments, folds, source, report) -> None:
    if folds is None:
        for r in rows:
            r["split"] = ""
        report.update(folds_source=None, folds_official=False, split_segments={"": len(rows)})
        report["notes"].append(
            "no standard fold lists found (folds_file, <root>/cmu_mosei_std_folds.py or an installed "
            "mmsdk package): every split is empty")
        return
    fold_of = {v: s for s in SPLITS for v in folds[s]}
    for r in rows:
        r["split"] = fold_of.get(r["video"], "")
    digest = folds_digest(folds)
    report.update(folds_source=source, folds_sha256=digest, folds_official=digest == OFFICIAL_FOLDS_SHA256,
                  fold_videos={s: len(folds[s]) for s in SPLITS},
                  fold_videos_without_labels={s: sorted(set(folds[s]) - set(segments)) for s in SPLITS},
                  videos_in_no_fold=len(set(segments) - set(fold_of)))
    if not report["folds_official"]:
        sizes = ", ".join(f"{s} {len(folds[s])}" for s in SPLITS)
        official = ", ".join(f"{s} {n}" for s, n in OFFICIAL_FOLD_SIZES.items())
        report["notes"].append(f"fold lists from {source} are not the official SDK lists ({sizes} videos; "
                               f"official: {official}): per-fold counts not checked")
    counts = {s: 0 for s in (*SPLITS, "")}
    for r in rows:
        counts[r["split"]] += 1
    report["split_segments"] = counts


# ---------------------------------------------------------------- labels

def _raw_dir(root: Path) -> Path:
    if not root.is_dir():
        raise CorpusError(f"{root}: CMU-MOSEI folder does not exist")
    for raw in (root / "Raw", root):
        if raw.joinpath(*WAV_DIR).is_dir():
            return raw.resolve()
    raise CorpusError(f"{root}: no {'/'.join(('Raw',) + WAV_DIR)} folder (expected the CMU_MOSEI.zip "
                      f"'Raw' tree with the full-length 16 kHz wavs)")


def input_files(root, labels_file=None, folds_file=None, **_options) -> list[Path]:
    """The label file, the folds file and the transcripts the manifest is read from (rule inputs)."""
    root = Path(root)
    files = []
    try:
        files.append(_labels_path(root, labels_file))
    except CorpusError:
        return []  # the manifest job reports the missing file with its reason
    if folds_file:
        files.append(Path(folds_file))
    elif (root / FOLDS_NAME).is_file():
        files.append(root / FOLDS_NAME)
    for base in (root / "Raw", root):
        trans = base.joinpath(*TRANSCRIPT_DIR)
        if trans.is_dir():
            files += sorted(p for p in trans.iterdir() if p.suffix == ".txt")
            break
    return files


def _labels_path(root: Path, labels_file) -> Path:
    if labels_file:
        path = Path(labels_file)
        if not path.is_file():
            raise CorpusError(f"{path}: labels file (labels_file) does not exist")
        return path.resolve()
    candidates = [root / LABELS_NAME, root / "Raw" / "Labels" / LABELS_NAME, root / "Labels" / LABELS_NAME]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise CorpusError(f"{LABELS_NAME} not found (looked at {', '.join(map(str, candidates))}); "
                      f"pass its path as labels_file")


def _read_labels(path: Path, report: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """video -> (features N x 7 float64, intervals N x 2 as stored)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CorpusError(f"{path}: not an HDF5 computational sequence ({e})") from None
    with f:
        if LABELS_GROUP in f:
            group = f[LABELS_GROUP]
        elif len(f.keys()) == 1:
            (name,) = f.keys()
            group = f[name]
            report["notes"].append(f"labels group is '{name}', not '{LABELS_GROUP}'")
        else:
            raise CorpusError(f"{path}: no '{LABELS_GROUP}' group (found {sorted(f.keys())})")
        if "data" not in group:
            raise CorpusError(f"{path}: '{group.name}/data' missing")
        _check_dimension_names(group, path, report)
        segments = {}
        for video in sorted(group["data"].keys()):
            entry = group["data"][video]
            try:
                features = np.asarray(entry["features"][()], dtype=np.float64)
                intervals = np.asarray(entry["intervals"][()])
            except KeyError as e:
                raise CorpusError(f"{path}: {entry.name} lacks {e}") from None
            if features.ndim != 2 or features.shape[1] != len(DIMENSIONS):
                raise CorpusError(f"{path}: {entry.name}/features has shape {features.shape}, "
                                  f"expected (N, {len(DIMENSIONS)}) ({', '.join(DIMENSIONS)})")
            if intervals.shape != (len(features), 2):
                raise CorpusError(f"{path}: {entry.name}/intervals has shape {intervals.shape}, "
                                  f"expected ({len(features)}, 2) to match its features")
            if not np.issubdtype(intervals.dtype, np.floating):
                intervals = intervals.astype(np.float64)
            segments[video] = (features, intervals)
    if not segments:
        raise CorpusError(f"{path}: no videos under {LABELS_GROUP}/data")
    return segments


def _check_dimension_names(group, path: Path, report: dict) -> None:
    """Refuse a file whose metadata names the seven columns in another order."""
    meta = group.get("metadata")
    if meta is None or "dimension names" not in meta:
        report["notes"].append("no 'dimension names' metadata: assumed the documented column order")
        return
    value = meta["dimension names"][()]
    value = value[0] if isinstance(value, np.ndarray) and value.size else value
    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        names = json.loads(value)
    except ValueError:
        names = None
    canonical = [_canonical(n) for n in names] if isinstance(names, list) else None
    if canonical == list(DIMENSIONS):
        return
    if canonical is not None and sorted(c or "" for c in canonical) == sorted(DIMENSIONS):
        raise CorpusError(f"{path}: metadata 'dimension names' lists the columns as {names}, not in the "
                          f"expected order {list(DIMENSIONS)}; the labels would be read into the wrong emotions")
    report["notes"].append(f"'dimension names' metadata {value!r} not recognised: assumed the documented "
                           f"column order {list(DIMENSIONS)}")


def _canonical(name) -> str | None:
    n = str(name).strip().lower()
    for stem, dim in (("sentiment", "sentiment"), ("happ", "happy"), ("sad", "sad"), ("ang", "anger"),
                      ("surpr", "surprise"), ("disgust", "disgust"), ("fear", "fear")):
        if n.startswith(stem):
            return dim
    return None


def _rows(segments, path: Path):
    rows, out_of_range = [], []
    for video, (features, intervals) in segments.items():
        for i, (values, (start, end)) in enumerate(zip(features, intervals)):
            start, end = float(start), float(end)
            if not (np.isfinite(start) and np.isfinite(end)) or end <= max(start, 0.0):
                raise CorpusError(f"{path}: {video}[{i}] has interval {start}..{end} s "
                                  f"(must be finite with end > max(start, 0))")
            problem = _rating_problem(values)
            if problem:
                out_of_range.append((video, i, problem))
            row = dict(utt_id=f"{video}[{i}]", video=video, row=i, speaker=video, session="", gender="",
                       mode="", script="", raw_start=start, raw_end=end, start=max(start, 0.0), end=end,
                       label=emotion_labels(values[None, 1:])[0] if not problem else "")
            row.update({col: float(v) for col, v in zip(RATING_COLUMNS, values)})
            rows.append(row)
    return rows, out_of_range


def _rating_problem(values: np.ndarray) -> str | None:
    if not np.isfinite(values).all():
        return "non-finite rating"
    lo, hi = SENTIMENT_RANGE
    if not lo - RANGE_EPS <= values[0] <= hi + RANGE_EPS:
        return f"sentiment {values[0]:g} outside [{lo:g}, {hi:g}]"
    lo, hi = EMOTION_RANGE
    bad = [f"{name} {v:g}" for name, v in zip(EMOTIONS, values[1:]) if not lo - RANGE_EPS <= v <= hi + RANGE_EPS]
    return f"{', '.join(bad)} outside [{lo:g}, {hi:g}]" if bad else None


def _handle_out_of_range(out_of_range, path: Path, allow: bool, report: dict) -> None:
    if not allow:
        shown = listing(f"{v}[{i}]: {p}" for v, i, p in out_of_range)
        raise CorpusError(f"{path}: {len(out_of_range)} segment(s) with ratings out of range:{shown}\n"
                          f"pass allow_out_of_range=True to drop them (they are counted in the report)")
    report["segments_dropped_out_of_range"] = [f"{v}[{i}]" for v, i, _ in out_of_range]
    report["notes"].append(f"{len(out_of_range)} segment(s) with out-of-range ratings dropped")


def _check_counts(segments, report: dict, path: Path) -> None:
    """Counts over the whole labels file (before any allowed drop), so they test the file."""
    if len(segments) != STANDARD_VIDEOS:
        report["standard_counts_checked"] = False
        report["notes"].append(f"{len(segments)} labelled videos, not the standard {STANDARD_VIDEOS}: "
                               f"segment counts not checked")
        return
    found = {"segments": report["segments"], "negative starts": report["negative_starts"]}
    expected = {"segments": STANDARD_SEGMENTS, "negative starts": STANDARD_NEGATIVE_STARTS}
    if report.get("folds_official"):
        found.update({f"split '{s}'": n for s, n in report["split_segments"].items()})
        expected.update({f"split '{s}'": n for s, n in STANDARD_SPLIT_SEGMENTS.items()})
    wrong = {k: (found[k], expected[k]) for k in expected if found[k] != expected[k]}
    if wrong:
        detail = "; ".join(f"{k}: found {f}, expected {e}" for k, (f, e) in wrong.items())
        raise CorpusError(f"{path}: CMU-MOSEI standard counts differ ({detail}). The labels file or fold "
                          f"lists are not the standard ones; pass check_standard_counts=False to use them anyway")
    report["standard_counts_checked"] = True


# ---------------------------------------------------------------- audio and text

def _add_audio(rows, raw: Path, allow_missing: bool, tolerance: float, report: dict) -> list[dict]:
    wav_dir = raw.joinpath(*WAV_DIR)
    paths = {video: wav_dir / f"{video}.wav" for video in dict.fromkeys(r["video"] for r in rows)}
    headers, missing, unreadable = headers_at_rate(paths.values(), SAMPLE_RATE)
    info = {video: (path, headers[path].duration) for video, path in paths.items() if path in headers}
    if unreadable:
        raise CorpusError(f"CMU-MOSEI: {len(unreadable)} wav file(s) unusable:" + listing(unreadable))
    if missing:
        if not allow_missing:
            raise CorpusError(f"CMU-MOSEI: {len(missing)} labelled video(s) have no wav:{listing(missing)}\n"
                              f"pass allow_missing_audio=True to drop their segments (counted in the report)")
        dropped = [r for r in rows if r["video"] not in info]
        report["videos_without_audio"] = sorted(p.stem for p in missing)
        report["segments_dropped_missing_audio"] = len(dropped)
        report["notes"].append(f"{len(missing)} video(s) without wav: {len(dropped)} segment(s) dropped")
        rows = [r for r in rows if r["video"] in info]
    past, clipped = [], 0
    for r in rows:
        path, duration = info[r["video"]]
        r["audio_path"] = str(path)
        if r["end"] > duration:
            if r["end"] - duration > tolerance or r["start"] >= duration:
                past.append(f"{r['utt_id']}: ends at {r['end']:.3f} s, {path.name} is {duration:.3f} s long")
                continue
            r["end"], clipped = duration, clipped + 1
        r["duration"] = r["end"] - r["start"]
    if past:
        raise CorpusError(f"CMU-MOSEI: {len(past)} segment(s) end past their wav (more than end_tolerance="
                          f"{tolerance} s):\n  " + "\n  ".join(past[:10]))
    report["ends_clipped_to_audio"] = clipped
    return rows


def _add_text(rows, raw: Path, segments, report: dict) -> None:
    trans_dir = raw.joinpath(*TRANSCRIPT_DIR)
    cache: dict[str, dict] = {}
    missing_files, unmatched, ambiguous = [], 0, 0
    for r in rows:
        video = r["video"]
        if video not in cache:
            path = trans_dir / f"{video}.txt"
            if path.is_file():
                cache[video] = _read_transcript(path, video, segments[video][1].dtype)
            else:
                cache[video] = {}
                missing_files.append(video)
        key = (r["raw_start"], r["raw_end"])
        texts = cache[video].get(key)
        if texts is None:
            r["text"], unmatched = "", unmatched + 1
        elif len(set(texts)) > 1:
            r["text"], ambiguous = "", ambiguous + 1
        else:
            r["text"] = texts[0]
    report["transcript_files_missing"] = len(missing_files)
    report["segments_without_transcript"] = unmatched
    report["segments_with_ambiguous_transcript"] = ambiguous
    if unmatched or ambiguous:
        report["notes"].append(f"{unmatched + ambiguous} segment(s) have text '' ({unmatched} without a transcript "
                               f"line of the same start/end, {ambiguous} with differing lines; "
                               f"{len(missing_files)} transcript file(s) missing)")


def _read_transcript(path: Path, video: str, dtype) -> dict[tuple[float, float], list[str]]:
    """(start, end) -> texts, with the times rounded to the labels' float precision.

    The video id is stripped as a known prefix rather than split on: ids may contain '_'.
    """
    out: dict[tuple[float, float], list[str]] = {}
    prefix = f"{video}___"
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line[len(prefix):].split("___", 3) if line.startswith(prefix) else []
        try:
            _clip, start, end, text = parts
            key = tuple(float(dtype.type(float(t))) for t in (start, end))
        except ValueError:
            raise CorpusError(f"{path}:{lineno}: expected '{prefix}<clip>___<start>___<end>___<text>', "
                              f"got {line[:80]!r}") from None
        out.setdefault(key, []).append(text.strip())
    return out


def _log_report(report: dict) -> None:
    log.info("CMU-MOSEI: %d segments of %d videos from %s; split counts %s; %d negative starts clipped; "
             "Li et al. subset %d (paper: %d)", report["segments"], report["videos"], report["labels_file"],
             report.get("split_segments"), report["negative_starts"], report["li2020_subset"],
             LI2020_SUBSET_PAPER)
    for note in report["notes"]:
        log.warning("CMU-MOSEI: %s", note)


@register_eval_rule("li2020")
def li2020_rule(df: pd.DataFrame, predicted_labels) -> tuple[np.ndarray, np.ndarray, str]:
    """Cross-corpus scoring of Li et al. (their Table 3): which rows count, which are right."""
    r = _ratings(df)
    used = ((r["rating_happy"] > 0) | (r["rating_sad"] > 0) | (r["rating_anger"] > 0) | (r == 0).all(axis=1)).to_numpy()
    correct = np.zeros(len(df), dtype=bool)
    correct[used] = li2020_correct(df.loc[used], np.asarray(predicted_labels, dtype=object)[used])
    return used, correct, ("segments with a positive happy, sad or anger rating, or all six emotion ratings zero "
                           "(neutral); a prediction is correct when that emotion's rating is positive (neutral: "
                           "all six zero), so a segment rated both happy and sad accepts either")

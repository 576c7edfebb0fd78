"""IEMOCAP (``IEMOCAP_full_release``) to the manifest.

The labels live in ``Session*/dialog/EmoEvaluation/<dialog>.txt`` (one bracketed line per
turn, followed by per-annotator lines we ignore), the words in
``Session*/dialog/transcriptions/<dialog>.txt`` and the audio either as one file per turn
(``sentences/wav``) or one file per dialogue (``dialog/wav``) cut by the EmoEvaluation
times. Everything the published 4-class numbers depend on is checked here, because a
corpus that silently lost a folder still trains and only gives slightly wrong results.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from ser_pipeline.corpora import register_loader
from ser_pipeline.audio import audio_info
from ser_pipeline.errors import ConfigError, CorpusError, listing
from ser_pipeline.manifest import normalise

log = logging.getLogger(__name__)

CORPUS = "iemocap"
RELEASE_DIR = "IEMOCAP_full_release"
ALL_LABELS = ("neu", "hap", "exc", "sad", "ang", "fru", "sur", "fea", "dis", "oth", "xxx")
STANDARD_CLASSES = ("neu", "hap", "sad", "ang")
# The standard set before merging: what the 5531 count is over.
STANDARD_RAW = ("neu", "hap", "exc", "sad", "ang")

# The standard 4-class set (neu, hap+exc, sad, ang; both modes; all five sessions) as used
# by most IEMOCAP papers since Poria et al. / Neumann & Vu: 5531 utterances.
STANDARD_COUNTS = {"Ses01": 1085, "Ses02": 1023, "Ses03": 1151, "Ses04": 1031, "Ses05": 1241}

_SESSION_DIR = re.compile(r"^Session(\d+)$")
_EVAL_LINE = re.compile(r"^\[\s*(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\s*\]\s+(\S+)\s+(\S+)")
_TRANS_LINE = re.compile(r"^(Ses\d+[FM]_\S+_[FM]\d+)\s*\[[^\]]*\]:\s?(.*)$")
_UTT_ID = re.compile(r"^(Ses\d+)[FM]_\S+_([FM])\d+$")
_DIALOG = re.compile(r"^Ses\d+[FM]_(\S+?)$")
_AUDIO_SOURCES = ("sentences", "dialog")


def script_id(dialog: str) -> str:
    """The scenario a dialogue performs, shared by every session that performed it.

    Rule: drop the ``SesNNX_`` prefix, then any trailing lower-case letters. IEMOCAP splits a
    few recordings of one script/improvisation into parts (``Ses03M_impro05a``/``05b``,
    ``Ses05M_script01_1b``); the letter names the recording part, not a different text,
    so script-disjoint folds must treat ``script01_1b`` as ``script01_1``.

    Only scripted scenarios become the manifest's ``script`` column: every session performs
    all eight improvisations too, but in the actors' own words, so they share no text and
    treating ``impro01`` as a script would leave script-disjoint folds without training data.
    """
    m = _DIALOG.match(dialog)
    if not m:
        raise CorpusError(f"dialogue name '{dialog}' does not look like SesNN[FM]_<name>")
    return re.sub(r"[a-z]+$", "", m.group(1))


@register_loader("iemocap")
def prepare_iemocap(root, audio_source: str = "sentences", merge_excited: bool = False,
                    classes=ALL_LABELS, check_standard_counts: bool = True,
                    improvised_only: bool = False) -> pd.DataFrame:
    """Manifest of the IEMOCAP utterances whose (mapped) majority label is in ``classes``.

    ``root`` is ``IEMOCAP_full_release`` (or its parent). By default every turn is kept with
    its own majority label (``xxx`` = no majority): which labels an experiment uses, and
    whether ``exc`` counts as ``hap``, is the protocol's choice (``labels:`` in config.yaml),
    so one manifest and one feature extraction serve every label set. With
    ``merge_excited`` the label ``exc`` becomes ``hap`` already here.
    ``audio_source="dialog"`` points rows at the dialogue wavs with start/end times, which
    avoids 10k small files on slow shared file systems.
    """
    classes = _check_options(audio_source, merge_excited, classes)
    root = _find_release(Path(root))
    sessions = _session_dirs(root)
    rows = []
    for session_dir in sessions.values():
        rows.extend(_read_evaluations(session_dir, classes, merge_excited, improvised_only))
    if not rows:
        raise CorpusError(f"{root}: no utterance has a label in {list(classes)}")
    _add_text(rows)
    if audio_source == "sentences":
        _add_sentence_audio(rows)
    else:
        _add_dialog_audio(rows)
    df = pd.DataFrame(rows).drop(columns=["session_dir", "dialog"])
    standard = set(STANDARD_CLASSES if merge_excited else STANDARD_RAW)
    if check_standard_counts and standard <= set(classes) and not improvised_only:
        if set(sessions) == set(STANDARD_COUNTS):
            _check_counts(df[df["label"].isin(standard)])
        else:
            log.warning("IEMOCAP at %s has sessions %s, not all of %s: utterance counts not checked",
                        root, sorted(sessions), sorted(STANDARD_COUNTS))
    return normalise(df, CORPUS)


def input_files(root, **_options) -> list[Path]:
    """The label and transcription files the manifest is read from (rule inputs)."""
    root = _find_release(Path(root))
    files = []
    for session_dir in _session_dirs(root).values():
        for sub in ("EmoEvaluation", "transcriptions"):
            folder = session_dir / "dialog" / sub
            if folder.is_dir():
                files += [p for p in sorted(folder.iterdir())
                          if p.is_file() and p.suffix == ".txt" and not p.name.startswith(".")]
    return files


def _check_options(audio_source, merge_excited, classes) -> tuple[str, ...]:
    if audio_source not in _AUDIO_SOURCES:
        raise ConfigError(f"audio_source: '{audio_source}' is not one of {list(_AUDIO_SOURCES)}")
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    classes = tuple(classes)
    if merge_excited and classes == ALL_LABELS:
        classes = tuple(c for c in ALL_LABELS if c != "exc")
    unknown = [c for c in classes if c not in ALL_LABELS]
    if unknown or not classes:
        raise ConfigError(f"classes: {unknown or '[]'} not IEMOCAP labels; choose from {list(ALL_LABELS)}")
    if merge_excited and "exc" in classes:
        raise ConfigError("classes: 'exc' listed while merge_excited is on (exc is counted as hap); "
                          "drop 'exc' or set merge_excited: false")
    return classes


def _find_release(root: Path) -> Path:
    if not root.is_dir():
        raise CorpusError(f"{root}: IEMOCAP folder does not exist")
    if not any(_SESSION_DIR.match(p.name) for p in root.iterdir()) and (root / RELEASE_DIR).is_dir():
        root = root / RELEASE_DIR
    return root.resolve()


def _session_dirs(root: Path) -> dict[str, Path]:
    found = {}
    for p in sorted(root.iterdir()):
        m = _SESSION_DIR.match(p.name)
        if m and p.is_dir():
            found[f"Ses{int(m.group(1)):02d}"] = p
    if not found:
        raise CorpusError(f"{root}: no Session1..Session5 folders; expected the {RELEASE_DIR} folder")
    return found


def _read_evaluations(session_dir: Path, classes, merge_excited, improvised_only) -> list[dict]:
    eval_dir = session_dir / "dialog" / "EmoEvaluation"
    if not eval_dir.is_dir():
        raise CorpusError(f"{eval_dir}: EmoEvaluation folder missing")
    rows = []
    # Only the top-level files: Categorical/, Attribute/, Self-evaluation/ hold per-annotator
    # copies, and macOS leaves '._Ses01...' resource forks that are not text at all.
    label_files = [p for p in sorted(eval_dir.iterdir())
                   if p.is_file() and p.suffix == ".txt" and not p.name.startswith(".")]
    _check_every_dialogue_labelled(session_dir, {p.stem for p in label_files})
    for path in label_files:
        for utt, start, end, raw in _parse_evaluation(path):
            label = "hap" if (merge_excited and raw == "exc") else raw
            dialog = utt.rsplit("_", 1)[0]
            mode = "improvised" if "_impro" in dialog else "scripted"
            if label not in classes or (improvised_only and mode != "improvised"):
                continue
            session, letter = _UTT_ID.match(utt).groups()
            rows.append(dict(utt_id=utt, session=session, speaker=session + letter, gender=letter,
                             label=label, mode=mode, dialog=dialog,
                             script=script_id(dialog) if mode == "scripted" else "",
                             start=start, end=end, session_dir=session_dir))
    return rows


def _check_every_dialogue_labelled(session_dir: Path, labelled: set[str]) -> None:
    """A dialogue with transcriptions or sentence wavs but no EmoEvaluation file would drop out
    of the manifest without a trace (and with the count check off, nothing would notice)."""
    trans = session_dir / "dialog" / "transcriptions"
    wavs = session_dir / "sentences" / "wav"
    dialogues = set()
    if trans.is_dir():
        dialogues |= {p.stem for p in trans.iterdir() if p.suffix == ".txt" and not p.name.startswith(".")}
    if wavs.is_dir():
        dialogues |= {p.name for p in wavs.iterdir() if p.is_dir() and not p.name.startswith(".")}
    unlabelled = sorted(dialogues - labelled)
    if unlabelled:
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        raise CorpusError(f"{eval_dir}: label file missing for {len(unlabelled)} dialogue(s) that have "
                          f"transcriptions or audio:" + listing(f"{eval_dir / d}.txt" for d in unlabelled))


def _parse_evaluation(path: Path):
    """Yield (utt_id, start, end, label) for each turn line of one EmoEvaluation file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.startswith("["):
            continue  # header, blank lines and the C-/A- annotator lines
        m = _EVAL_LINE.match(line)
        if not m:
            raise CorpusError(f"{path}:{lineno}: cannot parse turn line {line!r}")
        start, end, utt, label = float(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
        if not _UTT_ID.match(utt):
            raise CorpusError(f"{path}:{lineno}: utterance id '{utt}' is not SesNN[FM]_<dialog>_[FM]NNN")
        if label not in ALL_LABELS:
            raise CorpusError(f"{path}:{lineno}: unknown label '{label}' (expected one of {list(ALL_LABELS)})")
        if end <= start:
            raise CorpusError(f"{path}:{lineno}: end {end} is not after start {start} for {utt}")
        yield utt, start, end, label


def _add_text(rows: list[dict]) -> None:
    cache: dict[Path, dict[str, str]] = {}
    for row in rows:
        path = row["session_dir"] / "dialog" / "transcriptions" / f"{row['dialog']}.txt"
        if path not in cache:
            if not path.is_file():
                raise CorpusError(f"{path}: transcription file missing (needed for {row['utt_id']})")
            cache[path] = _parse_transcription(path)
        if row["utt_id"] not in cache[path]:
            raise CorpusError(f"{path}: no transcription line for {row['utt_id']}")
        row["text"] = cache[path][row["utt_id"]]


def _parse_transcription(path: Path) -> dict[str, str]:
    texts = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _TRANS_LINE.match(line.strip())
        if m:  # overlap markers (M_/F_ ...) and MXX/FXX lines have no emotion label: skip
            texts[m.group(1)] = m.group(2).strip()
    return texts


def _add_sentence_audio(rows: list[dict]) -> None:
    missing, lengths = [], []
    for row in rows:
        path = row["session_dir"] / "sentences" / "wav" / row["dialog"] / f"{row['utt_id']}.wav"
        annotated = row["end"] - row["start"]
        row["audio_path"], row["start"], row["end"] = str(path), float("nan"), float("nan")
        if not path.is_file():
            missing.append(path)
            continue
        row["duration"] = audio_info(path).duration
        lengths.append((row["utt_id"], str(path), annotated, row["duration"]))
    _raise_missing(missing)
    sentence_length_mismatches(lengths)


SENTENCE_LENGTH_TOLERANCE = 0.05
"""Seconds a sentence wav may differ from its EmoEvaluation end - start before it is reported."""


def sentence_length_mismatches(lengths, tolerance: float = SENTENCE_LENGTH_TOLERANCE) -> list[dict]:
    """Sentence wavs whose length disagrees with their EmoEvaluation times; logged, returned.

    ``lengths`` holds ``(utt_id, wav_path, annotated_seconds, wav_seconds)``. The sentence
    wavs are IEMOCAP's own cuts of the dialogue recordings, so a disagreement means either a
    damaged copy or a cut that differs from the annotation; the wav is still the utterance
    the corpus ships, so this is a report, not an error. The 50 ms default (five 10 ms
    frames) is far above the rounding of 4-decimal times; it has not been checked against a
    real IEMOCAP copy, so if one warns for many files, look at the differences before
    raising it.
    """
    found = [dict(utt_id=u, audio_path=p, annotated=a, wav=w, difference=w - a)
             for u, p, a, w in lengths if abs(w - a) > tolerance]
    if found:
        shown = listing(f"{m['utt_id']}: wav {m['wav']:.3f} s, EmoEvaluation {m['annotated']:.3f} s "
                        f"({m['audio_path']})" for m in found)
        log.warning("IEMOCAP: %d sentence wav(s) differ from their EmoEvaluation times by more than %.3f s:%s",
                    len(found), tolerance, shown)
    return found


def _add_dialog_audio(rows: list[dict]) -> None:
    missing = []
    for row in rows:
        path = row["session_dir"] / "dialog" / "wav" / f"{row['dialog']}.wav"
        row["audio_path"] = str(path)
        row["duration"] = row["end"] - row["start"]
        if not path.is_file() and path not in missing:
            missing.append(path)
    _raise_missing(missing)


def _raise_missing(missing: list[Path]) -> None:
    if missing:
        raise CorpusError(f"IEMOCAP: {len(missing)} wav file(s) missing:" + listing(missing))


def _check_counts(df: pd.DataFrame) -> None:
    found = df.groupby("session").size().to_dict()
    if found == STANDARD_COUNTS:
        return
    expected_total = sum(STANDARD_COUNTS.values())

    def fmt(counts):
        return ", ".join(f"{s} {counts.get(s, 0)}" for s in sorted(set(STANDARD_COUNTS) | set(counts)))

    raise CorpusError(
        f"IEMOCAP standard 4-class set: expected {expected_total} utterances ({fmt(STANDARD_COUNTS)}), "
        f"found {len(df)} ({fmt(found)}) with labels {sorted(set(df['label']))}. The corpus copy is "
        f"incomplete or modified; "
        f"pass check_standard_counts=False to use it anyway")

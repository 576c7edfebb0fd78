"""FAU Aibo Emotion Corpus, Interspeech 2009 Emotion Challenge partition, to the manifest.

Layout read::

    <root>/labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt   <chunk> <A|E|N|P|R> <confidence>
    <root>/labels/IS2009EmotionChallenge/chunk_labels_2cl_corpus.txt   <chunk> <IDL|NEG> <confidence>
    <root>/wav/<chunk>.wav

A chunk id is ``<School>_<child>_<turn>_<chunk>`` (``Ohm_01_015_00``). The child number
restarts in each school, so speaker = school + child (``Ohm_01`` and ``Mont_01`` are two
children); session = the school. split = ``train`` for Ohm and ``test`` for Mont, the
challenge partition. The challenge defines no validation set: Triantafyllopoulos et al.
validate on Ohm children 31 and 32, which is a protocol choice left to the fold definitions.

label = the 5-class label (A angry, E emphatic, N neutral, P positive, R rest),
``label_2cl`` = the 2-class label (NEG, IDL); ``rating_confidence`` and
``rating_confidence_2cl`` keep the third column of each file. Both files must list the same
chunks and every chunk needs its wav: a difference is an error listing the chunks, never a
silent drop. gender and text are "" (the label files carry neither).

Counts asserted with ``check_standard_counts``:

* chunks per school, Ohm 9,959 and Mont 8,257, and the 5-class counts per school (A 881/611,
  E 2,093/1,508, N 5,590/5,377, P 674/215, R 721/546), from Schuller, Steidl and Batliner,
  "The INTERSPEECH 2009 Emotion Challenge" (Table 1); the totals agree with
  Triantafyllopoulos et al. (2021), Table 1 (A 1,492, E 3,601, N 10,967, P 889, R 1,267);
* 51 speakers (Triantafyllopoulos et al. 2021, Table 1);
* the 2-class totals over both schools, NEG 5,823 and IDL 12,393. Triantafyllopoulos et al.'s
  Table 1 prints these two numbers with the labels the other way round (IDL 5,823, NEG 12,393);
  we read it as a swap, because 10,967 chunks are Neutral and 889 Positive in the same table,
  and an IDL class of 5,823 would make most of them NEG. The per-school 2-class counts are not
  asserted: we found no source we could read and cite for them.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from ser_pipeline.corpora import register_loader
from ser_pipeline import SAMPLE_RATE
from ser_pipeline.audio import headers_at_rate
from ser_pipeline.errors import CorpusError, listing
from ser_pipeline.manifest import normalise

log = logging.getLogger(__name__)

CORPUS = "fau_aibo"
LABEL_DIR = ("labels", "IS2009EmotionChallenge")
LABEL_FILES = {"5cl": "chunk_labels_5cl_corpus.txt", "2cl": "chunk_labels_2cl_corpus.txt"}
LABELS = {"5cl": ("A", "E", "N", "P", "R"), "2cl": ("IDL", "NEG")}
SPLIT_OF_SCHOOL = {"Ohm": "train", "Mont": "test"}

STANDARD_CHUNKS = {"Ohm": 9959, "Mont": 8257}
STANDARD_5CL = {"Ohm": {"A": 881, "E": 2093, "N": 5590, "P": 674, "R": 721},
                "Mont": {"A": 611, "E": 1508, "N": 5377, "P": 215, "R": 546}}
STANDARD_2CL_TOTAL = {"IDL": 12393, "NEG": 5823}
STANDARD_SPEAKERS = 51

_CHUNK = re.compile(r"^([A-Za-z]+)_(\d+)_(\d+)_(\d+)$")


def input_files(root, **_options) -> list[Path]:
    """The two challenge label files (rule inputs: editing one reruns the manifest)."""
    return [Path(root).joinpath(*LABEL_DIR, name) for name in LABEL_FILES.values()
            if Path(root).joinpath(*LABEL_DIR, name).is_file()]


@register_loader("fau_aibo")
def prepare_fau_aibo(root, check_standard_counts: bool = True) -> pd.DataFrame:
    """Manifest of every FAU-AIBO chunk with both challenge labels (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: FAU-AIBO folder does not exist")
    root = root.resolve()
    labels = {task: _read_label_file(root.joinpath(*LABEL_DIR, name), task) for task, name in LABEL_FILES.items()}
    _check_same_chunks(root, labels)
    rows = []
    for chunk, (label, conf) in labels["5cl"].items():
        school, child = _CHUNK.match(chunk).group(1, 2)
        label_2cl, conf_2cl = labels["2cl"][chunk]
        rows.append(dict(utt_id=chunk, speaker=f"{school}_{child}", session=school, gender="",
                         label=label, label_2cl=label_2cl, rating_confidence=conf,
                         rating_confidence_2cl=conf_2cl, split=SPLIT_OF_SCHOOL[school], text="",
                         mode="", script=""))
    _add_audio(root, rows)
    df = normalise(pd.DataFrame(rows), CORPUS)
    report = _report(root, df)
    if check_standard_counts:
        _check_counts(df, root)
    report["standard_counts_checked"] = bool(check_standard_counts)
    log.info("FAU-AIBO: %d chunks (%s), %d speakers, 5-class %s, 2-class %s", len(df), report["chunks"],
             report["speakers"], report["labels_5cl"], report["labels_2cl"])
    if report["wavs_without_labels"]:
        log.warning("FAU-AIBO: %d wav file(s) in %s have no label line (not in the manifest)",
                    report["wavs_without_labels"], root / "wav")
    df.attrs["report"] = report
    return df


def _read_label_file(path: Path, task: str) -> dict[str, tuple[str, float]]:
    if not path.is_file():
        raise CorpusError(f"{path}: label file missing (expected the IS2009EmotionChallenge label files "
                          f"under {'/'.join(LABEL_DIR)})")
    out: dict[str, tuple[str, float]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise CorpusError(f"{path}:{lineno}: expected '<chunk> <label> <confidence>', got {line.strip()!r}")
        chunk, label, conf = fields
        m = _CHUNK.match(chunk)
        if not m or m.group(1) not in SPLIT_OF_SCHOOL:
            raise CorpusError(f"{path}:{lineno}: chunk id '{chunk}' is not <Ohm|Mont>_<child>_<turn>_<chunk>")
        if label not in LABELS[task]:
            raise CorpusError(f"{path}:{lineno}: unknown label '{label}' for chunk {chunk} "
                              f"(expected one of {list(LABELS[task])})")
        try:
            confidence = float(conf)
        except ValueError:
            raise CorpusError(f"{path}:{lineno}: confidence '{conf}' of chunk {chunk} is not a number") from None
        if chunk in out:
            raise CorpusError(f"{path}:{lineno}: chunk {chunk} listed twice")
        out[chunk] = (label, confidence)
    if not out:
        raise CorpusError(f"{path}: no label lines")
    return out


def _check_same_chunks(root: Path, labels: dict) -> None:
    only = {task: sorted(set(labels[task]) - set(labels[other]))
            for task, other in (("5cl", "2cl"), ("2cl", "5cl"))}
    if only["5cl"] or only["2cl"]:
        parts = [f"{len(ids)} chunk(s) only in {LABEL_FILES[task]}: {ids[:10]}"
                 + (" ..." if len(ids) > 10 else "") for task, ids in only.items() if ids]
        raise CorpusError(f"{root.joinpath(*LABEL_DIR)}: the 5-class and 2-class label files list different "
                          f"chunks; " + "; ".join(parts))


def _add_audio(root: Path, rows: list[dict]) -> None:
    paths = [root / "wav" / f"{row['utt_id']}.wav" for row in rows]
    headers, missing, unusable = headers_at_rate(paths, SAMPLE_RATE)
    for row, path in zip(rows, paths):
        row["audio_path"] = str(path)
        if path in headers:
            row["duration"] = headers[path].duration
    if missing:
        raise CorpusError(f"FAU-AIBO: {len(missing)} labelled chunk(s) have no wav:" + listing(missing))
    if unusable:
        raise CorpusError(f"FAU-AIBO: {len(unusable)} wav file(s) unusable:" + listing(unusable))


def _report(root: Path, df: pd.DataFrame) -> dict:
    labelled = set(df["utt_id"])
    extra = sum(1 for p in (root / "wav").glob("*.wav") if p.stem not in labelled)
    return {"chunks": {s: int((df["session"] == s).sum()) for s in SPLIT_OF_SCHOOL},
            "speakers": int(df["speaker"].nunique()),
            "labels_5cl": {s: dict(sorted(Counter(df.loc[df["session"] == s, "label"]).items()))
                           for s in SPLIT_OF_SCHOOL},
            "labels_2cl": {s: dict(sorted(Counter(df.loc[df["session"] == s, "label_2cl"]).items()))
                           for s in SPLIT_OF_SCHOOL},
            "wavs_without_labels": extra}


def _check_counts(df: pd.DataFrame, root: Path) -> None:
    found, expected = {}, {}
    for school in SPLIT_OF_SCHOOL:
        part = df[df["session"] == school]
        found[f"{school} chunks"], expected[f"{school} chunks"] = len(part), STANDARD_CHUNKS[school]
        counts = Counter(part["label"])
        for label, n in STANDARD_5CL[school].items():
            found[f"{school} {label}"], expected[f"{school} {label}"] = counts.get(label, 0), n
    counts = Counter(df["label_2cl"])
    for label, n in STANDARD_2CL_TOTAL.items():
        found[f"all {label}"], expected[f"all {label}"] = counts.get(label, 0), n
    found["speakers"], expected["speakers"] = df["speaker"].nunique(), STANDARD_SPEAKERS
    wrong = [f"{k}: found {found[k]}, expected {n}" for k, n in expected.items() if found[k] != n]
    if wrong:
        raise CorpusError(f"{root}: FAU-AIBO IS2009 challenge counts differ ({'; '.join(wrong)}). The corpus copy is "
                          f"incomplete or modified; pass check_standard_counts=False to use it anyway")

"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005), to the manifest.

``download.zip`` from the corpus site holds ``wav/`` with 535 utterances of 10 actors
(16 kHz mono), named ``SSTTTEV.wav``: speaker (2 digits), text code (``a01`` .. ``b10``),
emotion (German initial: W Wut/Ärger, L Langeweile, E Ekel, A Angst, F Freude, T Trauer,
N neutral) and version letter. Speaker sex/age and the ten German sentences are those of the
corpus documentation (emodb.bilderbar.info/docu, reproduced in DagsHub/audio-datasets'
``EMODB/README.md``). A public audformat build script for EmoDB gives the opposite sex for
speakers 09, 10, 12 and 13; we follow the corpus documentation.

The archive has no published checksum, and no public project we searched pins one. So the
download is trust-on-first-use: the sha256 and size of the first download are recorded in
``<target>/download.zip.tofu.json`` and every later download into that folder (or a copy of
that record) must match them. This detects a changed or damaged archive after the first
download, but cannot tell whether the first download itself was the real one. Pass
``sha256=`` to check against a digest you trust instead.

``speaker`` and ``session`` are the two-digit speaker id (EmoDB has no sessions),
``script`` the text code, ``text`` the German sentence.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from pathlib import Path

import pandas as pd

from ser_pipeline.corpora import register_loader
from ser_pipeline.corpora.open_common import IEMOCAP4, add_header_columns, apply_label_map, compare_counts
from ser_pipeline.errors import CorpusError
from ser_pipeline.manifest import normalise

log = logging.getLogger(__name__)

CORPUS = "emodb"
ARCHIVE = {"url": "http://emodb.bilderbar.info/download/download.zip", "name": "download.zip"}
TOFU_RECORD = "download.zip.tofu.json"

EMOTIONS = {"W": "angry", "L": "bored", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
LABELS = tuple(EMOTIONS.values())
SPEAKERS = {"03": "M", "08": "F", "09": "F", "10": "M", "11": "M", "12": "M", "13": "F", "14": "F",
            "15": "M", "16": "F"}
TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}

TO_IEMOCAP4 = {"neutral": "neu", "happy": "hap", "sad": "sad", "angry": "ang",
               "bored": None, "disgust": None, "fearful": None}
LABEL_MAPS = {"iemocap4": TO_IEMOCAP4}
assert set(TO_IEMOCAP4) == set(LABELS) and set(TO_IEMOCAP4.values()) - {None} == set(IEMOCAP4)

EXPECTED_LABELS = {"angry": 127, "bored": 81, "disgust": 46, "fearful": 69, "happy": 71, "sad": 62, "neutral": 79}
EXPECTED_TOTAL = 535

_NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])\.wav$")


def download_emodb(target, sha256: str | None = None, url: str | None = None) -> Path:
    """Download ``download.zip`` into ``target`` (trust on first use, see module doc), unpack it.

    Returns the folder holding ``wav/``, ready for :func:`prepare_emodb`.
    """
    from ser_pipeline.atomic import write_json
    from ser_pipeline.download import download, extract_archive, file_digest, is_extracted

    target = Path(target)
    if is_extracted(target / "emodb", ARCHIVE["name"]) and not (target / ARCHIVE["name"]).exists():
        return target / "emodb"  # unpacked from a checked archive that was deleted since
    record_path = target / TOFU_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    if sha256 is None and record is not None:
        expected = dict(sha256=record["sha256"], size=record["size"])
    else:
        expected = dict(sha256=sha256)
    archive = download(url or ARCHIVE["url"], target / ARCHIVE["name"], **expected)
    if record is None:
        digest = expected["sha256"] or file_digest(archive, "sha256")
        write_json(record_path, {
            "url": url or ARCHIVE["url"], "sha256": digest, "size": archive.stat().st_size,
            "recorded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "rule": "trust on first use: EmoDB publishes no checksum; later downloads must match this record",
        })
        if sha256 is None:
            log.warning("EmoDB has no published checksum: recorded sha256 %s of this first download in %s "
                        "(trust on first use); later downloads are checked against it", digest, record_path)
    return extract_archive(archive, target / "emodb")


def parse_name(path: Path) -> dict:
    """Fields of an EmoDB file name; a CorpusError naming the file if any is invalid."""
    m = _NAME.match(path.name)
    if not m:
        raise CorpusError(f"{path}: not an EmoDB file name (expected speaker, text, emotion, version, "
                          f"e.g. 03a01Fa.wav)")
    speaker, text, emotion, version = m.groups()
    problems = []
    if speaker not in SPEAKERS:
        problems.append(f"speaker {speaker} is not one of {sorted(SPEAKERS)}")
    if text not in TEXTS:
        problems.append(f"text {text} is not one of {sorted(TEXTS)}")
    if emotion not in EMOTIONS:
        problems.append(f"emotion letter {emotion} is not one of {sorted(EMOTIONS)}")
    if problems:
        raise CorpusError(f"{path}: invalid EmoDB file name: " + "; ".join(problems))
    return dict(speaker=speaker, text=text, emotion=EMOTIONS[emotion], version=version)


def input_files(root, **_options) -> list[Path]:
    """The wav files: their names are EmoDB's labels (a renamed or added file reruns the manifest)."""
    try:
        return sorted(_find_wav_dir(Path(root)).glob("*.wav"))
    except CorpusError:
        return []


@register_loader("emodb")
def prepare_emodb(root, label_map=None, check_counts: bool = True) -> pd.DataFrame:
    """Manifest of the EmoDB utterances under ``root``.

    ``root`` is the unpacked archive (holding ``wav/``), the ``wav`` folder itself or the
    :func:`download_emodb` target. ``label_map``: None keeps the seven labels, ``iemocap4``
    or a mapping {label: class or null} maps them. ``check_counts`` asserts the complete
    corpus (535 utterances, 10 speakers, counts per emotion); turn it off for a partial copy.
    """
    wav_dir = _find_wav_dir(Path(root))
    rows = []
    for path in sorted(wav_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() != ".wav":
            continue
        f = parse_name(path)
        rows.append(dict(utt_id=path.stem, audio_path=str(path.resolve()), speaker=f["speaker"],
                         session=f["speaker"], gender=SPEAKERS[f["speaker"]], label=f["emotion"],
                         text=TEXTS[f["text"]], script=f["text"]))
    if not rows:
        raise CorpusError(f"{wav_dir}: no EmoDB wav files")
    found = pd.Series([r["label"] for r in rows]).value_counts().to_dict()
    missing = sorted(set(SPEAKERS) - {r["speaker"] for r in rows})
    detail = f"; speakers without files: {missing}" if missing else ""
    compare_counts(CORPUS, wav_dir, found, EXPECTED_LABELS, "utterances", check_counts, detail=detail)
    add_header_columns(rows, CORPUS)
    df = apply_label_map(pd.DataFrame(rows), CORPUS, LABELS, LABEL_MAPS, label_map)
    return normalise(df, CORPUS)


def _find_wav_dir(root: Path) -> Path:
    if not root.is_dir():
        raise CorpusError(f"{root}: EmoDB folder does not exist")
    for candidate in (root / "wav", root / "emodb" / "wav"):
        if candidate.is_dir():
            return candidate.resolve()
    if any(p.suffix.lower() == ".wav" for p in root.iterdir()):
        return root.resolve()
    raise CorpusError(f"{root}: no wav/ folder (the unpacked download.zip has one) and no wav files")

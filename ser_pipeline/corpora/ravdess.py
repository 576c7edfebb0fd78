"""RAVDESS speech (Livingstone & Russo 2018) to the manifest; downloadable, CC BY-NC-SA 4.0.

``Audio_Speech_Actors_01-24.zip`` from Zenodo record 1188976 holds ``Actor_01`` ..
``Actor_24``, 60 files each, named ``MM-VV-EE-II-SS-RR-AA.wav``: modality (03 audio-only),
vocal channel (01 speech), emotion, intensity (01 normal, 02 strong; neutral has only
normal), statement, repetition, actor (odd = male). Every field is checked, because a file
from the song archive or a renamed copy would otherwise get a plausible but wrong label.
Audio is 48 kHz 16-bit, a few files stereo: :func:`ser_pipeline.audio.read_audio` converts.

Choices:

- ``speaker`` is ``Actor_XX``. RAVDESS has no sessions; ``session`` is the actor too, so
  "leave one session out" is leave-one-actor-out (24 folds) and every fold scheme that groups
  by speaker or session keeps an actor's files together.
- ``script`` is the statement (``statement01``/``statement02``), ``text`` its words,
  ``label_intensity`` normal/strong.
- Calm is NOT mapped to IEMOCAP's neutral by ``label_map: iemocap4``. RAVDESS prompts calm as
  an emotion of its own (low arousal, mildly positive), recorded at two intensities like
  every emotion, while neutral is the no-emotion baseline with one; IEMOCAP's ``neu`` is
  "no emotion". Merging would also triple the neutral class (96 + 192 files). Where a study
  merges them, ``label_map: iemocap4_calm_as_neu`` does so explicitly.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ser_pipeline.corpora import register_loader
from ser_pipeline.corpora.open_common import IEMOCAP4, add_header_columns, apply_label_map, compare_counts
from ser_pipeline.errors import CorpusError
from ser_pipeline.manifest import normalise

CORPUS = "ravdess"
ARCHIVE = {
    "url": "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
    "name": "Audio_Speech_Actors_01-24.zip",
    "size": 208_468_073,
    "md5": "bc696df654c87fed845eb13823edef8a",  # published on the Zenodo record
}

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
            "06": "fearful", "07": "disgust", "08": "surprised"}
LABELS = tuple(EMOTIONS.values())
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
ACTORS = tuple(f"{i:02d}" for i in range(1, 25))

TO_IEMOCAP4 = {"neutral": "neu", "calm": None, "happy": "hap", "sad": "sad", "angry": "ang",
               "fearful": None, "disgust": None, "surprised": None}
TO_IEMOCAP4_CALM_AS_NEU = {**TO_IEMOCAP4, "calm": "neu"}
LABEL_MAPS = {"iemocap4": TO_IEMOCAP4, "iemocap4_calm_as_neu": TO_IEMOCAP4_CALM_AS_NEU}
assert set(TO_IEMOCAP4) == set(LABELS) and set(TO_IEMOCAP4.values()) - {None} == set(IEMOCAP4)

FILES_PER_ACTOR = 60  # neutral 1 intensity x 2 statements x 2 repetitions + 7 emotions x 2 x 2 x 2
EXPECTED_FILES = {f"Actor_{a}": FILES_PER_ACTOR for a in ACTORS}  # 1440
EXPECTED_LABELS = {lab: (96 if lab == "neutral" else 192) for lab in LABELS}

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")


def download_ravdess(target, url: str | None = None) -> Path:
    """Download and verify the speech archive into ``target``, unpack it; returns the corpus root.

    ``url`` replaces the Zenodo address (a mirror); size and MD5 are checked either way.
    A repeat re-verifies the archive (or, if it was deleted after unpacking, does nothing).
    """
    from ser_pipeline.download import download, extract_archive, is_extracted

    target = Path(target)
    out = target / Path(ARCHIVE["name"]).stem
    if is_extracted(out, ARCHIVE["name"]) and not (target / ARCHIVE["name"]).exists():
        return out  # unpacked from a verified archive that was deleted since
    archive = download(url or ARCHIVE["url"], target / ARCHIVE["name"], size=ARCHIVE["size"], md5=ARCHIVE["md5"])
    return extract_archive(archive, out)


def expected_names(actor: str) -> list[str]:
    """The 60 file names one actor has in the complete corpus."""
    names = []
    for emo in EMOTIONS:
        for inten in (("01",) if emo == "01" else tuple(INTENSITIES)):
            for stmt in STATEMENTS:
                for rep in ("01", "02"):
                    names.append(f"03-01-{emo}-{inten}-{stmt}-{rep}-{actor}.wav")
    return names


def parse_name(path: Path) -> dict:
    """Fields of a RAVDESS speech file name; a CorpusError naming the file if any is invalid."""
    m = _NAME.match(path.name)
    if not m:
        raise CorpusError(f"{path}: not a RAVDESS file name (expected MM-VV-EE-II-SS-RR-AA.wav, "
                          f"seven two-digit fields)")
    modality, channel, emo, inten, stmt, rep, actor = m.groups()
    problems = []
    if modality != "03":
        problems.append(f"modality {modality} is not 03 (audio-only)")
    if channel != "01":
        problems.append(f"vocal channel {channel} is not 01 (speech; 02 is the song archive)")
    if emo not in EMOTIONS:
        problems.append(f"emotion {emo} is not one of {sorted(EMOTIONS)}")
    if inten not in INTENSITIES:
        problems.append(f"intensity {inten} is not 01 or 02")
    elif emo == "01" and inten != "01":
        problems.append("neutral has no strong intensity (02)")
    if stmt not in STATEMENTS:
        problems.append(f"statement {stmt} is not 01 or 02")
    if rep not in ("01", "02"):
        problems.append(f"repetition {rep} is not 01 or 02")
    if actor not in ACTORS:
        problems.append(f"actor {actor} is not 01..24")
    if problems:
        raise CorpusError(f"{path}: invalid RAVDESS file name: " + "; ".join(problems))
    return dict(emotion=EMOTIONS[emo], intensity=INTENSITIES[inten], statement=stmt, repetition=rep, actor=actor)


def input_files(root, **_options) -> list[Path]:
    """The wav files: their names are RAVDESS's labels (a renamed or added file reruns the manifest)."""
    try:
        root = _find_root(Path(root))
    except CorpusError:
        return []
    return sorted(p for d in root.iterdir() if _ACTOR_DIR.match(d.name) and d.is_dir() for p in d.glob("*.wav"))


@register_loader("ravdess")
def prepare_ravdess(root, label_map=None, check_counts: bool = True) -> pd.DataFrame:
    """Manifest of the RAVDESS speech files under ``root``.

    ``root`` holds the ``Actor_XX`` folders (or is the download target holding one folder
    that does). ``label_map``: None keeps RAVDESS's eight labels; ``iemocap4`` or
    ``iemocap4_calm_as_neu`` (see module doc) or a mapping {label: class or null} maps them,
    dropping what maps to null. ``check_counts`` asserts the complete corpus (1,440 files,
    60 per actor); turn it off for a partial copy.
    """
    root = _find_root(Path(root))
    rows = []
    for actor_dir in sorted(p for p in root.iterdir() if _ACTOR_DIR.match(p.name) and p.is_dir()):
        folder_actor = _ACTOR_DIR.match(actor_dir.name).group(1)
        for path in sorted(actor_dir.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() != ".wav":
                continue  # macOS resource forks, notes
            f = parse_name(path)
            if f["actor"] != folder_actor:
                raise CorpusError(f"{path}: actor {f['actor']} in the file name, but the file is in {actor_dir.name}")
            speaker = f"Actor_{f['actor']}"
            rows.append(dict(utt_id=path.stem, audio_path=str(path.resolve()), speaker=speaker, session=speaker,
                             gender="M" if int(f["actor"]) % 2 else "F", label=f["emotion"],
                             text=STATEMENTS[f["statement"]], script=f"statement{f['statement']}",
                             label_intensity=f["intensity"]))
    if not rows:
        raise CorpusError(f"{root}: no RAVDESS wav files in its Actor_XX folders")
    _check_complete(root, rows, check_counts)
    add_header_columns(rows, CORPUS)
    df = apply_label_map(pd.DataFrame(rows), CORPUS, LABELS, LABEL_MAPS, label_map)
    return normalise(df, CORPUS)


def _find_root(root: Path) -> Path:
    if not root.is_dir():
        raise CorpusError(f"{root}: RAVDESS folder does not exist")

    def has_actors(p: Path) -> bool:
        return any(_ACTOR_DIR.match(c.name) and c.is_dir() for c in p.iterdir())

    if has_actors(root):
        return root.resolve()
    # the download target holds the unpacked folder; allow one more level for archives with
    # a top folder; skip macOS's __MACOSX copies, which hold Actor_XX folders of '._' files
    level = [c for c in sorted(root.iterdir()) if c.is_dir() and c.name != "__MACOSX"]
    for _ in range(2):
        inner = [c for c in level if has_actors(c)]
        if len(inner) == 1:
            return inner[0].resolve()
        if inner:
            break
        level = [g for c in level for g in sorted(c.iterdir()) if g.is_dir() and g.name != "__MACOSX"]
    raise CorpusError(f"{root}: no Actor_01 .. Actor_24 folders here or in one or two subfolder levels "
                      f"(found {len(inner)} candidate subfolders); point the loader at the unpacked "
                      f"{ARCHIVE['name']}")


def _check_complete(root: Path, rows: list[dict], enforce: bool) -> None:
    found = pd.Series([r["speaker"] for r in rows]).value_counts().to_dict()
    present = {Path(r["audio_path"]).name for r in rows}
    missing = [n for a in ACTORS for n in expected_names(a) if n not in present]
    detail = f"; missing files, e.g. {missing[:5]}" if missing else ""
    compare_counts(CORPUS, root, found, EXPECTED_FILES, "files", enforce, detail=detail)

"""CREMA-D (Cao et al. 2014) to the manifest; downloadable clip by clip, Open Database License.

The corpus lives in the GitHub repository ``CheyneyComputerScience/CREMA-D`` with its audio
in Git LFS: a checkout without LFS content (or the repository's zip) has, for each
``AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav``, a small pointer file giving the
clip's ``oid sha256:<hex>`` and ``size``. :func:`download_crema_d` reads those pointers and
fetches every clip from GitHub's LFS media host, checking size and sha256 per file, so the
pointers the user supplies are the checksums. Speaker sex comes from ``VideoDemographics.csv``
(a plain file in the repository).

Pinned source: commit ``1658cd342dff90010aa843eaeebd53610a08b1dc`` (2025-03-21, the newest
we could inspect; ``AudioWAV`` and ``VideoDemographics.csv`` last changed in 26f9fcc, 2022-10-18).
Its ``AudioWAV`` holds 7,442 pointers, 91 actors, 605,899,936 bytes in all. Clip URLs follow
GitHub's media pattern ``https://media.githubusercontent.com/media/<owner>/<repo>/<ref>/<path>``,
which several public CREMA-D downloaders use with ``master`` as ref; we pass the commit.
Because each clip is checked against its pointer's sha256, the ref only decides which
clips are asked for, never what is accepted.

Known bad clip (corpus README, "Audio Files"): ``1076_MTI_SAD_XX`` "no audio, very short".
By default it is dropped with a logged warning (``drop_known_bad=False`` keeps it). The README
also lists 1076_MTI_NEU_XX, 1064_TIE_SAD_XX and 1064_IEO_DIS_MD, but for their mp3/flv
copies; it calls the 1076_MTI_NEU_XX wav fine and names no problem with the other two wavs,
so they are kept.

``speaker`` and ``session`` are the four-digit actor id (CREMA-D has no sessions; grouping
by either keeps an actor's clips together), ``script`` the sentence code, ``text`` its words,
``label_intensity`` low/medium/high/unspecified.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from ser_pipeline.corpora import register_loader
from ser_pipeline.corpora.open_common import IEMOCAP4, add_header_columns, apply_label_map, compare_counts
from ser_pipeline.errors import CorpusError, listing
from ser_pipeline.manifest import normalise

log = logging.getLogger(__name__)

CORPUS = "crema_d"
REPOSITORY = "CheyneyComputerScience/CREMA-D"
PINNED_COMMIT = "1658cd342dff90010aa843eaeebd53610a08b1dc"
MEDIA_URL = "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/{ref}/AudioWAV/{name}"
DEMOGRAPHICS = {
    "name": "VideoDemographics.csv",
    "url": "https://raw.githubusercontent.com/CheyneyComputerScience/CREMA-D/{ref}/VideoDemographics.csv",
    "size": 4033,
    "sha256": "e33ddc8b60bedf98541735801127cbb67098b5957271adbdd5dea8a44294eec3",  # at PINNED_COMMIT
}
EXPECTED_POINTERS = {"files": 7442, "bytes": 605_899_936}

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LABELS = tuple(EMOTIONS.values())
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {  # corpus README, "Filename labeling conventions"
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
KNOWN_BAD = {"1076_MTI_SAD_XX": "no audio, very short (corpus README, Audio Files)"}

TO_IEMOCAP4 = {"neutral": "neu", "happy": "hap", "sad": "sad", "angry": "ang", "disgust": None, "fearful": None}
LABEL_MAPS = {"iemocap4": TO_IEMOCAP4}
assert set(TO_IEMOCAP4) == set(LABELS) and set(TO_IEMOCAP4.values()) - {None} == set(IEMOCAP4)

# counts of the complete corpus (from the pinned commit's pointers)
EXPECTED_ACTORS = tuple(str(a) for a in range(1001, 1092))
EXPECTED_LABELS = {"angry": 1271, "disgust": 1271, "fearful": 1271, "happy": 1271, "neutral": 1087, "sad": 1271}

_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")
_POINTER = re.compile(r"^version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n?$")
_LFS_PREFIX = b"version https://git-lfs"


def parse_name(path: Path) -> dict:
    """Fields of a CREMA-D clip name; a CorpusError naming the file if any is invalid."""
    m = _NAME.match(path.name)
    if not m:
        raise CorpusError(f"{path}: not a CREMA-D clip name (expected <actor>_<sentence>_<emotion>_<level>.wav, "
                          f"e.g. 1001_DFA_ANG_XX.wav)")
    actor, sentence, emotion, level = m.groups()
    problems = []
    if sentence not in SENTENCES:
        problems.append(f"sentence {sentence} is not one of {sorted(SENTENCES)}")
    if emotion not in EMOTIONS:
        problems.append(f"emotion {emotion} is not one of {sorted(EMOTIONS)}")
    if level not in LEVELS:
        problems.append(f"level {level} is not one of {sorted(LEVELS)}")
    if problems:
        raise CorpusError(f"{path}: invalid CREMA-D clip name: " + "; ".join(problems))
    return dict(actor=actor, sentence=sentence, emotion=EMOTIONS[emotion], level=LEVELS[level])


# ---------------------------------------------------------------- download

def read_pointer(path: Path) -> tuple[str, int]:
    """(sha256, size) from a Git LFS pointer file; a CorpusError naming the file otherwise."""
    data = path.read_bytes()[:1024]
    if not data.startswith(_LFS_PREFIX):
        raise CorpusError(f"{path}: not a Git LFS pointer (it holds {path.stat().st_size} bytes of something else; "
                          f"a checkout with LFS content needs no download: give it to prepare_crema_d)")
    m = _POINTER.match(data.decode("ascii", "replace").replace("\r\n", "\n"))
    if not m:
        raise CorpusError(f"{path}: malformed Git LFS pointer (expected version, 'oid sha256:<64 hex>', 'size <n>')")
    return m.group(1), int(m.group(2))


def read_pointers(pointers, check_counts: bool = True) -> dict[str, tuple[str, int]]:
    """{clip file name: (sha256, size)} from a checkout (``AudioWAV/`` inside) or the pointer folder."""
    pointers = Path(pointers)
    folder = pointers / "AudioWAV" if (pointers / "AudioWAV").is_dir() else pointers
    if not folder.is_dir():
        raise CorpusError(f"{pointers}: not a folder; give a CREMA-D checkout without LFS content or its AudioWAV folder")
    found = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() != ".wav":
            continue
        parse_name(path)
        found[path.name] = read_pointer(path)
    if not found:
        raise CorpusError(f"{folder}: no CREMA-D pointer files (*.wav)")
    total = sum(size for _, size in found.values())
    if (len(found), total) != (EXPECTED_POINTERS["files"], EXPECTED_POINTERS["bytes"]):
        msg = (f"{folder}: {len(found)} pointers for {total} bytes, but the pinned commit {PINNED_COMMIT[:7]} has "
               f"{EXPECTED_POINTERS['files']} for {EXPECTED_POINTERS['bytes']} bytes")
        if check_counts:
            raise CorpusError(msg + "; pass check_counts=False to download a partial or different set")
        log.warning("%s (check_counts is off)", msg)
    return found


def download_crema_d(target, pointers, ref: str = PINNED_COMMIT, workers: int = 8,
                     check_counts: bool = True) -> Path:
    """Fetch every clip named by the LFS pointers in ``pointers`` into ``target/AudioWAV``.

    Each clip is verified against its pointer's size and sha256 before it gets its name;
    clips already present and verified are not fetched again, and failures are listed
    together at the end (run again to retry only those). ``VideoDemographics.csv`` is copied
    from the checkout when there, else downloaded at ``ref`` and checked against the digest
    pinned for :data:`PINNED_COMMIT`. Returns ``target``, ready for :func:`prepare_crema_d`.
    """
    from ser_pipeline.atomic import write_text
    from ser_pipeline.download import DownloadError, download

    target = Path(target)
    folder = Path(pointers) / "AudioWAV" if (Path(pointers) / "AudioWAV").is_dir() else Path(pointers)
    if folder.resolve() == (target / "AudioWAV").resolve():
        raise CorpusError(f"{target}: holds the pointer files themselves; download into another folder "
                          f"(the pointers are the checksums and must stay as they are)")
    wanted = read_pointers(pointers, check_counts)
    marker = target / "AudioWAV" / ".completed"
    stamp = {"ref": ref, "files": len(wanted), "bytes": sum(s for _, s in wanted.values())}
    if marker.is_file() and json.loads(marker.read_text()) == stamp and (target / DEMOGRAPHICS["name"]).is_file():
        return target
    _get_demographics(Path(pointers), target, ref)

    def fetch(item):
        name, (sha, size) = item
        try:
            download(MEDIA_URL.format(ref=ref, name=name), target / "AudioWAV" / name, size=size, sha256=sha)
            return None
        except DownloadError as e:
            return f"{name}: {e}"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        failures = [f for f in pool.map(fetch, sorted(wanted.items())) if f]
    if failures:
        raise DownloadError(f"CREMA-D: {len(failures)} of {len(wanted)} clips failed (run again to retry them):"
                            + listing(failures))
    write_text(marker, json.dumps(stamp) + "\n")
    return target


def _get_demographics(pointers: Path, target: Path, ref: str) -> None:
    from ser_pipeline.atomic import atomic_path
    from ser_pipeline.download import download

    dest = target / DEMOGRAPHICS["name"]
    for candidate in (pointers / DEMOGRAPHICS["name"], pointers.parent / DEMOGRAPHICS["name"]):
        if candidate.is_file():
            if not dest.is_file():
                with atomic_path(dest) as tmp:
                    shutil.copyfile(candidate, tmp)
            return
    pinned = ref == PINNED_COMMIT
    download(DEMOGRAPHICS["url"].format(ref=ref), dest,
             size=DEMOGRAPHICS["size"] if pinned else None, sha256=DEMOGRAPHICS["sha256"] if pinned else None)


# ---------------------------------------------------------------- manifest

def input_files(root, demographics=None, **_options) -> list[Path]:
    """The clips (their names are CREMA-D's labels) and the speaker table (rule inputs)."""
    root = Path(root)
    files = sorted((root / "AudioWAV").glob("*.wav"))
    table = Path(demographics) if demographics else root / DEMOGRAPHICS["name"]
    return files + ([table] if table.is_file() else [])


@register_loader("crema_d")
def prepare_crema_d(root, label_map=None, check_counts: bool = True, drop_known_bad: bool = True,
                    demographics=None) -> pd.DataFrame:
    """Manifest of the CREMA-D clips in ``root/AudioWAV``.

    ``root`` is the :func:`download_crema_d` target or a checkout with LFS content.
    ``demographics`` defaults to ``root/VideoDemographics.csv``. ``label_map``: None keeps
    the six labels, ``iemocap4`` or a mapping {label: class or null} maps them.
    ``check_counts`` asserts the complete corpus (7,442 clips, 91 actors, counts per
    emotion); turn it off for a partial copy. ``drop_known_bad``: see module doc.
    """
    root = Path(root)
    audio_dir = root / "AudioWAV"
    if not audio_dir.is_dir():
        raise CorpusError(f"{root}: no AudioWAV folder; give the download_crema_d target or a CREMA-D checkout")
    genders = _read_demographics(Path(demographics) if demographics else root / DEMOGRAPHICS["name"])
    rows, pointers = [], []
    for path in sorted(audio_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() != ".wav":
            continue
        f = parse_name(path)
        if f["actor"] not in genders:
            raise CorpusError(f"{path}: actor {f['actor']} is not in {DEMOGRAPHICS['name']}")
        if path.stat().st_size < 1024 and path.read_bytes().startswith(_LFS_PREFIX):
            pointers.append(path)
            continue
        rows.append(dict(utt_id=path.stem, audio_path=str(path.resolve()), speaker=f["actor"], session=f["actor"],
                         gender=genders[f["actor"]], label=f["emotion"], text=SENTENCES[f["sentence"]],
                         script=f["sentence"], label_intensity=f["level"]))
    if pointers:
        raise CorpusError(f"{audio_dir}: {len(pointers)} file(s) are Git LFS pointers, not audio (e.g. {pointers[0].name}); "
                          f"fetch the audio with download_crema_d(target, pointers='{root}') or 'git lfs pull'")
    if not rows:
        raise CorpusError(f"{audio_dir}: no CREMA-D clips")
    found = pd.Series([r["label"] for r in rows]).value_counts().to_dict()
    actors = {r["speaker"] for r in rows}
    missing_actors = sorted(set(EXPECTED_ACTORS) - actors)
    detail = f"; actors without clips: {missing_actors[:20]}" if missing_actors else ""
    compare_counts(CORPUS, root, found, EXPECTED_LABELS, "clips", check_counts, detail=detail)
    if drop_known_bad:
        bad = [r for r in rows if r["utt_id"] in KNOWN_BAD]
        for r in bad:
            log.warning("%s: dropping %s: %s (drop_known_bad=False keeps it)", CORPUS, r["utt_id"], KNOWN_BAD[r["utt_id"]])
        rows = [r for r in rows if r["utt_id"] not in KNOWN_BAD]
    add_header_columns(rows, CORPUS)
    df = apply_label_map(pd.DataFrame(rows), CORPUS, LABELS, LABEL_MAPS, label_map)
    return normalise(df, CORPUS)


def _read_demographics(path: Path) -> dict[str, str]:
    """{actor id: "M"/"F"} from VideoDemographics.csv."""
    if not path.is_file():
        raise CorpusError(f"{path}: CREMA-D speaker table missing (VideoDemographics.csv from the repository)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise CorpusError(f"{path}: cannot be read as CSV ({e})") from None
    if not {"ActorID", "Sex"} <= set(df.columns):
        raise CorpusError(f"{path}: needs columns ActorID and Sex (has {list(df.columns)})")
    sex = df["Sex"].str.strip().str.lower().map({"male": "M", "female": "F"})
    if sex.isna().any():
        bad = df.loc[sex.isna(), ["ActorID", "Sex"]].head(5).values.tolist()
        raise CorpusError(f"{path}: Sex must be Male or Female (rows {bad})")
    return dict(zip(df["ActorID"].str.strip(), sex))

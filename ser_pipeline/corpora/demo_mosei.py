"""A small synthetic corpus in the CMU-MOSEI layout, read by the real CMU-MOSEI loader.

It exists so the cross-corpus experiments (IEMOCAP -> CMU-MOSEI, Li et al. 2020) run offline,
and so every rule of :mod:`ser_pipeline.corpora.cmu_mosei` is exercised by real files: the
HDF5 ``CMU_MOSEI_Labels.csd`` with its metadata, full-length "video" wavs holding several
sentences with pauses between them, rows stored out of time order in some videos, a few
intervals starting before 0 s, sentences that carry no label (so transcript clip numbers run
ahead of row indices), a few labelled rows without a transcript line, video ids with '-' and
'_', videos in no fold and a fold id without labels, as in the real folds file.

Every video is one speaker (its own espeak-ng voice and prosody offset). Each sentence
expresses one emotion through prosody, with the IEMOCAP demo's per-class tendencies for
neu/hap/sad/ang (so a model trained on that demo transfers partly) and three more for
sur/dis/fea, all jittered per sentence and per speaker. Ratings are multi-label like MOSEI's
rater averages (thirds): the expressed emotion gets a positive rating, others sometimes a
small one (ties included, so the label's tie rule matters), some videos are flat (all zero).

Deterministic: same seed and espeak-ng version give byte-identical files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_pipeline.corpora import register_demo
from ser_pipeline import SAMPLE_RATE
from ser_pipeline.audio import write_audio
from ser_pipeline.corpora.cmu_mosei import (DIMENSIONS, FOLDS_NAME, LABELS_GROUP, LABELS_NAME, SPLITS,
                                            TRANSCRIPT_DIR, WAV_DIR, prepare_cmu_mosei)
from ser_pipeline.corpora.demo import (CLASS_PROSODY, PROSODY_LIMITS, SPEAKER_GAIN_SD_DB, SPEAKER_SD,
                                       UTTERANCE_GAIN_SD_DB, UTTERANCE_SD, _bank, _compose, _join)
from ser_pipeline.corpora.espeak import (build_once, check_ints, espeak_version, noise_floor, synthesise,
                                         trim_silence)

DEMO_VERSION = 1  # bump whenever the output for a given seed changes
DONE_MARKER = ".done"
ROOT_DIR = "CMU_MOSEI"

EMOTIONS = ("hap", "sad", "ang", "sur", "dis", "fea")  # .csd column order after sentiment
# Expressed emotion of a sentence: happy most common, as in MOSEI's ratings.
EXPRESSED_SHARE = {"hap": 0.30, "neu": 0.22, "sad": 0.16, "ang": 0.12, "sur": 0.06, "dis": 0.08, "fea": 0.06}
# Prosody as in the IEMOCAP demo (pitch, range %, rate, amplitude) plus the three extra classes.
PROSODY = {**{c: CLASS_PROSODY[c] for c in ("neu", "hap", "sad", "ang")},
           "sur": (68, 165, 175, 115), "dis": (40, 75, 145, 105), "fea": (63, 60, 205, 80)}
SENTIMENT_MEAN = {"neu": 0.2, "hap": 1.4, "sad": -1.1, "ang": -1.4, "sur": 0.4, "dis": -1.3, "fea": -0.9}
INTENSITY = np.array([1, 2, 3, 4, 5, 6, 7, 9]) / 3  # rater averages in thirds
INTENSITY_P = np.array([0.10, 0.20, 0.22, 0.18, 0.12, 0.09, 0.06, 0.03])
P_FLAT_VIDEO = 0.15        # every sentence neutral with all-zero ratings
P_SECONDARY = 0.2          # each other emotion gets a small rating too
P_NEUTRAL_STRAY = 0.2      # a neutral-expressed sentence still gets one small rating
P_UNLABELLED = 0.12        # sentence in the transcript but not in the labels
P_NO_TRANSCRIPT = 0.04     # labelled sentence whose transcript line is missing
P_SHUFFLED_ROWS = 0.4      # video whose label rows are not in time order
P_NEGATIVE_START = 0.15    # video whose first interval starts before 0 s
SENTENCES_PER_VIDEO = (5, 9)
PAD_SECONDS = (0.05, 0.3)  # interval boundaries around the speech
GAP_SECONDS = (0.4, 1.2)
TAIL_SECONDS = 0.8
MS = SAMPLE_RATE // 1000

VOICES = tuple(f"{lang}+{v}" for lang in ("en-us", "en", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-scotland")
               for v in ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m6", "m7"))
EXTRA_PHRASES = {
    "sur": (["Wow,", "Wait, really?", "No way,", "I did not see that coming,"],
            ["which totally surprised me!", "can you believe it?", "out of nowhere!"]),
    "dis": (["Ugh,", "Honestly, gross,", "That's disgusting,"],
            ["which made me feel sick.", "and it was revolting.", "yuck."]),
    "fea": (["I'm scared,", "Oh no, what if", "It's frightening,"],
            ["and I'm really worried about it.", "and that terrifies me.", "and I could not sleep."]),
}
_ID_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


@dataclass(frozen=True)
class DemoSentence:
    clip: int                 # transcript clip number (time order, unlabelled sentences included)
    row: int | None           # row in the .csd; None for an unlabelled sentence
    emotion: str              # expressed emotion (neu or one of EMOTIONS)
    ratings: tuple            # sentiment + six emotions, as written to the .csd
    text: str
    pitch: int
    pitch_range: int
    rate: int
    amplitude: int
    gain_db: float
    gap_before: float         # seconds of pause before the sentence
    pads: tuple               # interval seconds before/after the speech
    transcribed: bool


@dataclass(frozen=True)
class DemoVideo:
    video: str
    voice: str
    split: str                # train/valid/test, or "" for a video in no fold
    sentences: tuple


def plan_demo_mosei(seed: int = 0, n_videos: int = 32) -> list[DemoVideo]:
    """Everything except the samples: cheap, and what tests compare the loader's output to."""
    seed, n_videos = check_ints(seed=(seed, 0), n_videos=(n_videos, 1))
    rng = np.random.default_rng([seed, 0x6D6F7365])
    ids = _video_ids(rng, n_videos)
    splits = _splits(rng, n_videos)
    return [_plan_video(rng, vid, split) for vid, split in zip(ids, splits)]


@register_demo("cmu_mosei")
def generate_demo_mosei(out_dir, seed: int = 0, n_videos: int = 32) -> Path:
    """Write ``out_dir/CMU_MOSEI`` (unless already complete) and return its path.

    Built under a temporary name and renamed when complete; ``out_dir/.done`` holds the
    parameters, so an interrupted run never looks done and a rerun costs nothing.
    """
    out_dir = Path(out_dir)
    root, marker = out_dir / ROOT_DIR, out_dir / DONE_MARKER
    seed, n_videos = check_ints(seed=(seed, 0), n_videos=(n_videos, 1))
    params = {"version": DEMO_VERSION, "seed": seed, "n_videos": n_videos, "layout": "cmu_mosei"}

    def build(tmp: Path, exe: str, pool) -> None:
        plan = plan_demo_mosei(seed, n_videos)
        intervals = _render(tmp, plan, seed, exe, pool)
        _write_labels(tmp / LABELS_NAME, plan, intervals)
        _write_transcripts(tmp.joinpath("Raw", *TRANSCRIPT_DIR), plan, intervals)
        _write_folds(tmp / FOLDS_NAME, plan, rng=np.random.default_rng([seed, 0x666F6C64]))
        _write_readme(tmp, params, plan, exe)

    return build_once(root, marker, params, build)


def prepare_demo_mosei(out_dir, seed: int = 0, n_videos: int = 32):
    """Generate (if needed) and load the demo; its manifest's corpus name is 'demo_mosei'."""
    root = generate_demo_mosei(out_dir, seed, n_videos)
    df = prepare_cmu_mosei(root, check_standard_counts=False)
    df["corpus"] = "demo_mosei"
    return df


# ---------------------------------------------------------------- planning

def _video_ids(rng, n: int) -> list[str]:
    """YouTube-like ids, some numeric like MOSEI's; the first starts with '-', the second
    ends with '_' so the transcript parser meets both."""
    ids: list[str] = []
    while len(ids) < n:
        k = len(ids)
        if rng.random() < 0.2:
            vid = str(int(rng.integers(10000, 330000)))
        else:
            vid = "".join(rng.choice(_ID_CHARS, 11))
            vid = "-" + vid[1:] if k == 0 else (vid[:-1] + "_" if k == 1 else vid)
        if vid not in ids and "___" not in vid:
            ids.append(vid)
    return ids


def _splits(rng, n: int) -> list[str]:
    """About 70/12/18 % train/valid/test, one video in no fold once there are six."""
    n_none = 1 if n >= 6 else 0
    n_valid = max(1, round(0.12 * n)) if n >= 3 else 0
    n_test = max(1, round(0.18 * n)) if n >= 2 else 0
    n_train = n - n_none - n_valid - n_test
    splits = ["train"] * n_train + ["valid"] * n_valid + ["test"] * n_test + [""] * n_none
    return [str(s) for s in rng.permutation(splits)]


def _plan_video(rng, video: str, split: str) -> DemoVideo:
    voice = str(rng.choice(VOICES))
    offset = rng.normal(0, SPEAKER_SD)
    gain = rng.normal(0, SPEAKER_GAIN_SD_DB)
    flat = rng.random() < P_FLAT_VIDEO
    n = int(rng.integers(SENTENCES_PER_VIDEO[0], SENTENCES_PER_VIDEO[1] + 1))
    labelled = [rng.random() >= P_UNLABELLED for _ in range(n)]
    if not any(labelled):
        labelled[0] = True
    n_rows = sum(labelled)
    rows = list(rng.permutation(n_rows)) if rng.random() < P_SHUFFLED_ROWS else list(range(n_rows))
    negative_start = rng.random() < P_NEGATIVE_START
    sentences, next_row = [], 0
    for clip in range(n):
        emotion = "neu" if flat else str(rng.choice(list(EXPRESSED_SHARE), p=list(EXPRESSED_SHARE.values())))
        ratings = _ratings(rng, emotion, flat)
        values = np.asarray(PROSODY[emotion], float) + offset + rng.normal(0, UTTERANCE_SD)
        pitch, prange, rate, amp = (int(np.clip(round(v), lo, hi)) for v, (lo, hi) in zip(values, PROSODY_LIMITS))
        first = clip == 0
        gap = 0.05 if first and negative_start else round(float(rng.uniform(*GAP_SECONDS)), 3)
        pads = (round(float(rng.uniform(0.3, 0.5)), 3) if first and negative_start
                else round(float(rng.uniform(*PAD_SECONDS)), 3), round(float(rng.uniform(*PAD_SECONDS)), 3))
        row = None
        if labelled[clip]:
            row, next_row = int(rows[next_row]), next_row + 1
        sentences.append(DemoSentence(
            clip=clip, row=row, emotion=emotion, ratings=ratings, text=_text(rng, emotion), pitch=pitch,
            pitch_range=prange, rate=rate, amplitude=amp,
            gain_db=round(float(gain + rng.normal(0, UTTERANCE_GAIN_SD_DB)), 3), gap_before=gap, pads=pads,
            transcribed=row is None or rng.random() >= P_NO_TRANSCRIPT))
    return DemoVideo(video, voice, split, tuple(sentences))


def _ratings(rng, emotion: str, flat: bool) -> tuple:
    """(sentiment, happy, sad, anger, surprise, disgust, fear) as rater averages in thirds."""
    emotions = np.zeros(len(EMOTIONS))
    if not flat:
        if emotion == "neu":
            if rng.random() < P_NEUTRAL_STRAY:
                emotions[rng.integers(len(EMOTIONS))] = 1 / 3
        else:
            main = EMOTIONS.index(emotion)
            emotions[main] = rng.choice(INTENSITY, p=INTENSITY_P)
            for k in range(len(EMOTIONS)):
                if k != main and rng.random() < P_SECONDARY:
                    emotions[k] = min(emotions[main], rng.choice(INTENSITY[:2]))
    sentiment = 0.0 if flat else float(np.clip(np.round(3 * rng.normal(SENTIMENT_MEAN[emotion], 0.8)) / 3, -3, 3)) + 0.0
    return (sentiment, *(float(v) for v in emotions))


def _text(rng, emotion: str) -> str:
    if emotion in ("neu", "hap", "sad", "ang"):
        return _compose(rng, emotion)
    frame = str(rng.choice(_bank()["frames"]))
    prefixes, suffixes = EXTRA_PHRASES[emotion]
    r = rng.random()
    pre = str(rng.choice(prefixes)) if r < 0.45 else None
    suf = str(rng.choice(suffixes)) if 0.3 < r < 0.75 else None
    return _join(pre, frame, suf)


# ---------------------------------------------------------------- rendering

def _render(root: Path, plan: list[DemoVideo], seed: int, exe: str, pool) -> dict:
    """Write the video wavs; return (video, clip) -> (start, end) interval in seconds."""
    jobs = [(v, s) for v in plan for s in v.sentences]

    def speak(job):
        v, s = job
        return trim_silence(synthesise(exe, s.text, voice=v.voice, pitch=s.pitch, pitch_range=s.pitch_range,
                                       rate=s.rate, amplitude=s.amplitude, name=f"{v.video}_{s.clip}"))

    audio = dict(zip(((v.video, s.clip) for v, s in jobs), pool.map(speak, jobs)))
    wav_dir = root.joinpath("Raw", *WAV_DIR)
    intervals = {}
    for v in plan:
        spans, t = [], 0
        for s in v.sentences:
            t += _ms(s.gap_before * 1000)
            spans.append((t, t + _ms(len(audio[(v.video, s.clip)]) / MS)))
            t = spans[-1][1]
        x = noise_floor(seed, v.video, t + int(TAIL_SECONDS * SAMPLE_RATE))
        for s, (a, _) in zip(v.sentences, spans):
            y = audio[(v.video, s.clip)]
            x[a:a + len(y)] += y * np.float32(10 ** (s.gain_db / 20))
            intervals[(v.video, s.clip)] = (round((a - _ms(s.pads[0] * 1000)) / SAMPLE_RATE, 3),
                                            round((spans[s.clip][1] + _ms(s.pads[1] * 1000)) / SAMPLE_RATE, 3))
        write_audio(wav_dir / f"{v.video}.wav", np.clip(x, -0.99, 0.99))
    return intervals


def _ms(value: float) -> int:
    """Samples of a whole number of milliseconds, so 3-decimal times are exact sample positions."""
    return int(np.ceil(round(value, 6))) * MS


def _write_labels(path: Path, plan: list[DemoVideo], intervals: dict) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        group = f.create_group(LABELS_GROUP)
        data = group.create_group("data")
        for v in plan:
            rows = sorted((s for s in v.sentences if s.row is not None), key=lambda s: s.row)
            entry = data.create_group(v.video)
            entry.create_dataset("features", data=np.array([s.ratings for s in rows], dtype=np.float64))
            entry.create_dataset("intervals", data=np.array([intervals[(v.video, s.clip)] for s in rows],
                                                            dtype=np.float64))
        meta = group.create_group("metadata")
        for key, value in (("root name", LABELS_GROUP), ("dimension names", list(DIMENSIONS)),
                           ("computational sequence description", "SYNTHETIC demo labels (not CMU-MOSEI)")):
            ds = meta.create_dataset(key, (1,), dtype=h5py.special_dtype(vlen=str))
            ds[0] = json.dumps(value)


def _write_transcripts(folder: Path, plan: list[DemoVideo], intervals: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for v in plan:
        lines = []
        for s in v.sentences:
            if s.transcribed:
                start, end = intervals[(v.video, s.clip)]
                lines.append(f"{v.video}___{s.clip}___{start:.3f}___{end:.3f}___{s.text}")
        (folder / f"{v.video}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_folds(path: Path, plan: list[DemoVideo], rng) -> None:
    """The SDK's file format; like the real one it also lists a test video with no labels."""
    folds = {s: [v.video for v in plan if v.split == s] for s in SPLITS}
    folds["test"].append("".join(rng.choice(_ID_CHARS[:62], 11)))
    text = "".join(f"standard_{s}_fold={folds[s]!r}\n" for s in ("train", "test", "valid"))
    path.write_text(text)


def _write_readme(root: Path, params: dict, plan: list[DemoVideo], exe: str) -> None:
    rows = [s for v in plan for s in v.sentences if s.row is not None]
    (root / "README.demo.txt").write_text(
        "SYNTHETIC DEMO CORPUS - this is NOT CMU-MOSEI.\n\n"
        "Generated by ser_pipeline.corpora.demo_mosei.generate_demo_mosei in the CMU-MOSEI layout\n"
        "(CMU_MOSEI_Labels.csd, Raw/Audio/Full/WAV_16000, Raw/Transcript/Segmented/Combined) so that\n"
        "the cross-corpus experiments run without the corpus. Speech is espeak-ng; emotions are acted\n"
        "through prosody, noisily on purpose. Results on it say nothing about real emotion recognition.\n\n"
        f"seed: {params['seed']}\nn_videos: {params['n_videos']}\ngenerator version: {DEMO_VERSION}\n"
        f"espeak-ng: {espeak_version(exe)}\nlabelled segments: {len(rows)}\n")

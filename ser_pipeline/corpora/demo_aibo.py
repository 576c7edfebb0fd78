"""A small synthetic corpus in the FAU-AIBO (IS2009 challenge) layout, read by the real loader.

FAU-AIBO needs a licence; this stands in for it so the speaker-conditioning experiments
(Triantafyllopoulos et al. 2021) run offline. Layout and rules as in the real corpus: two
schools (Ohm = train, Mont = test), chunk ids ``<School>_<child>_<turn>_<chunk>`` whose child
numbers repeat across schools, Ohm children 31 and 32 present (the paper validates on them),
short chunks (0.4-2.5 s), both label files. 5-class labels are imbalanced like the real
corpus (N largest, then E, with A, R and P rare) and every child has several N chunks, since
the conditioned models need a neutral reference per speaker. 2-class labels follow the
5-class ones loosely (NEG mostly for A and E), as the challenge's separately derived label
sets do.

Speech is German espeak-ng with high child-like pitch, one voice and prosody offset per
child. A, N and P reuse the IEMOCAP demo's ang, neu and hap prosody; E (emphatic) is slow
and loud; R (rest) borrows another class's prosody at random. Everything is jittered, so
simple models land between chance and perfect. Deterministic: same seed and espeak-ng
version give byte-identical files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_pipeline.corpora import register_demo
from ser_pipeline import SAMPLE_RATE
from ser_pipeline.audio import write_audio
from ser_pipeline.corpora.demo import (CLASS_PROSODY, PROSODY_LIMITS, SPEAKER_GAIN_SD_DB, SPEAKER_SD,
                                       UTTERANCE_GAIN_SD_DB, UTTERANCE_SD)
from ser_pipeline.corpora.espeak import (build_once, check_ints, espeak_version, noise_floor, synthesise,
                                         trim_silence)
from ser_pipeline.corpora.fau_aibo import LABEL_DIR, LABEL_FILES, prepare_fau_aibo

DEMO_VERSION = 1  # bump whenever the output for a given seed changes
DONE_MARKER = ".done"
ROOT_DIR = "FAU_Aibo"
SCHOOLS = ("Ohm", "Mont")
VALIDATION_CHILDREN = (31, 32)  # Ohm children Triantafyllopoulos et al. validate on
CHILD_ID_RANGE = {"Ohm": 32, "Mont": 25}

# Share of N chunks guaranteed per child; the rest is drawn from REST_SHARE.
N_SHARE, MIN_N = 0.45, 3
REST_SHARE = {"E": 0.36, "A": 0.15, "R": 0.16, "P": 0.13, "N": 0.20}
P_NEG = {"A": 0.95, "E": 0.85, "N": 0.04, "P": 0.02, "R": 0.35}

CHILD_PITCH = 20  # added to the espeak pitch of every class
PROSODY = {"N": CLASS_PROSODY["neu"], "A": CLASS_PROSODY["ang"], "P": CLASS_PROSODY["hap"],
           "E": (52, 115, 125, 140)}
PITCH_MAX = 99
VOICES = tuple(f"de+{v}" for v in ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m6"))
MIN_SECONDS, MAX_SECONDS = 0.4, 2.5
EDGE_SECONDS = (0.05, 0.2)  # silence before and after the speech in a chunk
FADE_SECONDS = 0.02

WORDS = {
    "N": ["Aibo", "geh nach links", "lauf geradeaus", "nach rechts", "steh auf", "setz dich", "weiter",
          "dreh dich um", "komm her", "lauf zum Ball"],
    "E": ["links", "rechts", "geradeaus", "stopp", "nach links", "halt", "hierher"],
    "A": ["nein", "böser Hund", "hör auf", "du sollst stehen bleiben", "falsch", "nicht dahin"],
    "P": ["fein", "gut gemacht", "braver Hund", "toll", "super Aibo", "ja genau"],
    "R": ["äh", "hm", "ja", "okay", "was macht der", "oh"],
}


@dataclass(frozen=True)
class DemoChunk:
    chunk: str          # Ohm_01_015_00
    label: str          # A/E/N/P/R
    label_2cl: str      # IDL/NEG
    confidence: float
    confidence_2cl: float
    text: str
    voice: str
    pitch: int
    pitch_range: int
    rate: int
    amplitude: int
    gain_db: float
    edges: tuple        # seconds of silence before/after the speech


def plan_demo_aibo(seed: int = 0, speakers_per_school: int = 10, chunks_per_speaker: int = 20) -> list[DemoChunk]:
    """Everything except the samples, in chunk-id order."""
    seed, n_spk, n_chunks = _check(seed, speakers_per_school, chunks_per_speaker)
    rng = np.random.default_rng([seed, 0x6169626F])
    chunks = []
    for school in SCHOOLS:
        for child in _children(rng, school, n_spk):
            chunks.extend(_plan_child(rng, school, child, n_chunks))
    return sorted(chunks, key=lambda c: c.chunk)


@register_demo("fau_aibo")
def generate_demo_aibo(out_dir, seed: int = 0, speakers_per_school: int = 10, chunks_per_speaker: int = 20) -> Path:
    """Write ``out_dir/FAU_Aibo`` (unless already complete) and return its path; built under a
    temporary name and renamed, with ``out_dir/.done`` holding the parameters."""
    out_dir = Path(out_dir)
    root, marker = out_dir / ROOT_DIR, out_dir / DONE_MARKER
    seed, n_spk, n_chunks = _check(seed, speakers_per_school, chunks_per_speaker)
    params = {"version": DEMO_VERSION, "seed": seed, "speakers_per_school": n_spk,
              "chunks_per_speaker": n_chunks, "layout": "fau_aibo"}

    def build(tmp: Path, exe: str, pool) -> None:
        plan = plan_demo_aibo(seed, n_spk, n_chunks)
        _render(tmp / "wav", plan, seed, exe, pool)
        _write_labels(tmp.joinpath(*LABEL_DIR), plan)
        _write_readme(tmp, params, plan, exe)

    return build_once(root, marker, params, build)


def prepare_demo_aibo(out_dir, seed: int = 0, speakers_per_school: int = 10, chunks_per_speaker: int = 20):
    """Generate (if needed) and load the demo; its manifest's corpus name is 'demo_aibo'."""
    root = generate_demo_aibo(out_dir, seed, speakers_per_school, chunks_per_speaker)
    df = prepare_fau_aibo(root, check_standard_counts=False)
    df["corpus"] = "demo_aibo"
    return df


# ---------------------------------------------------------------- planning

def _check(seed, speakers_per_school, chunks_per_speaker):
    return check_ints(seed=(seed, 0), speakers_per_school=(speakers_per_school, len(VALIDATION_CHILDREN)),
                      chunks_per_speaker=(chunks_per_speaker, MIN_N + 1))


def _children(rng, school: str, n: int) -> list[int]:
    """Child numbers of one school: Ohm always has 31 and 32; numbers repeat across schools."""
    top = max(CHILD_ID_RANGE[school], n + len(VALIDATION_CHILDREN))
    if school == "Ohm":
        pool = [c for c in range(1, top + 1) if c not in VALIDATION_CHILDREN]
        return sorted([*VALIDATION_CHILDREN, *(int(c) for c in rng.choice(pool, n - 2, replace=False))])
    return sorted(int(c) for c in rng.choice(np.arange(1, top + 1), n, replace=False))


def _plan_child(rng, school: str, child: int, n: int) -> list[DemoChunk]:
    voice = str(rng.choice(VOICES))
    offset = rng.normal(0, SPEAKER_SD)
    gain = rng.normal(0, SPEAKER_GAIN_SD_DB)
    n_neutral = max(MIN_N, round(N_SHARE * n))
    labels = ["N"] * n_neutral + [str(x) for x in rng.choice(list(REST_SHARE), n - n_neutral,
                                                              p=list(REST_SHARE.values()))]
    labels = [str(x) for x in rng.permutation(labels)]
    chunks, turn, k = [], int(rng.integers(0, 5)), 0
    for label in labels:
        if k == 0 or k >= int(rng.integers(1, 4)):
            turn, k = turn + int(rng.integers(1, 4)), 0
        chunk_id = f"{school}_{child:02d}_{turn:03d}_{k:02d}"
        k += 1
        style = str(rng.choice(["N", "A", "P", "E"])) if label == "R" else label
        values = np.asarray(PROSODY[style], float) + offset + rng.normal(0, UTTERANCE_SD)
        values[0] += CHILD_PITCH
        limits = [(lo, PITCH_MAX if i == 0 else hi) for i, (lo, hi) in enumerate(PROSODY_LIMITS)]
        pitch, prange, rate, amp = (int(np.clip(round(v), lo, hi)) for v, (lo, hi) in zip(values, limits))
        neg = rng.random() < P_NEG[label]
        chunks.append(DemoChunk(
            chunk=chunk_id, label=label, label_2cl="NEG" if neg else "IDL",
            confidence=round(float(rng.uniform(0.4, 1.0)), 2), confidence_2cl=round(float(rng.uniform(0.5, 1.0)), 2),
            text=_text(rng, label), voice=voice, pitch=pitch, pitch_range=prange, rate=rate, amplitude=amp,
            gain_db=round(float(gain + rng.normal(0, UTTERANCE_GAIN_SD_DB)), 3),
            edges=tuple(round(float(rng.uniform(*EDGE_SECONDS)), 3) for _ in range(2))))
    return chunks


def _text(rng, label: str) -> str:
    """One or two short phrases, mostly of the chunk's own class, sometimes a neutral one."""
    parts = [str(rng.choice(WORDS[label] if rng.random() < 0.7 else WORDS["N"]))
             for _ in range(int(rng.choice([1, 1, 1, 2, 2])))]
    return ", ".join(parts)


# ---------------------------------------------------------------- rendering

def _render(wav_dir: Path, plan: list[DemoChunk], seed: int, exe: str, pool) -> None:
    def speak(c: DemoChunk):
        return trim_silence(synthesise(exe, c.text, voice=c.voice, pitch=c.pitch, pitch_range=c.pitch_range,
                                       rate=c.rate, amplitude=c.amplitude, name=c.chunk))

    for c, y in zip(plan, pool.map(speak, plan)):
        y = y * np.float32(10 ** (c.gain_db / 20))
        before, after = (int(e * SAMPLE_RATE) for e in c.edges)
        room = int(MAX_SECONDS * SAMPLE_RATE) - before - after
        if len(y) > room:  # too long for a chunk: cut with a short fade, as a chunker would
            y = y[:room].copy()
            fade = int(FADE_SECONDS * SAMPLE_RATE)
            y[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        n = max(before + len(y) + after, int(MIN_SECONDS * SAMPLE_RATE))
        x = noise_floor(seed, c.chunk, n)
        x[before:before + len(y)] += y
        write_audio(wav_dir / f"{c.chunk}.wav", np.clip(x, -0.99, 0.99))


def _write_labels(folder: Path, plan: list[DemoChunk]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LABEL_FILES["5cl"]).write_text("".join(f"{c.chunk} {c.label} {c.confidence:g}\n" for c in plan))
    (folder / LABEL_FILES["2cl"]).write_text("".join(f"{c.chunk} {c.label_2cl} {c.confidence_2cl:g}\n"
                                                     for c in plan))


def _write_readme(root: Path, params: dict, plan: list[DemoChunk], exe: str) -> None:
    counts = {s: {lab: sum(c.label == lab and c.chunk.startswith(s) for c in plan) for lab in "AENPR"}
              for s in SCHOOLS}
    (root / "README.demo.txt").write_text(
        "SYNTHETIC DEMO CORPUS - this is NOT the FAU Aibo Emotion Corpus.\n\n"
        "Generated by ser_pipeline.corpora.demo_aibo.generate_demo_aibo in the IS2009 challenge layout\n"
        "(labels/IS2009EmotionChallenge, wav/) so that the pipeline runs without the licensed corpus.\n"
        "German espeak-ng speech with child-like pitch; emotions acted through prosody, noisily on\n"
        "purpose. Results on it say nothing about real emotion recognition.\n\n"
        f"seed: {params['seed']}\nspeakers_per_school: {params['speakers_per_school']}\n"
        f"chunks_per_speaker: {params['chunks_per_speaker']}\ngenerator version: {DEMO_VERSION}\n"
        f"espeak-ng: {espeak_version(exe)}\n5-class labels: {counts}\n")

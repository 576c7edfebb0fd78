"""A small synthetic corpus in the exact IEMOCAP layout, so the pipeline runs without IEMOCAP.

IEMOCAP needs a licence; CI, tutorials and reviewers use this instead, and because it is
read by the real IEMOCAP loader every layout rule (speaker letter of the turn, exc -> hap,
dropped fru/xxx turns, script ids with part suffixes, dialog vs sentence audio) is exercised.
Speech comes from espeak-ng. The four emotions are realised as prosody (pitch level and
range, rate, loudness) and as word choice, both deliberately noisy (per-utterance jitter,
per-speaker offsets, plain wording for about half the turns, stray words of other emotions)
so that simple models land between chance and perfect instead of at either end. Scripted
dialogues reuse the same lines across sessions, as IEMOCAP's do, so script-disjoint folds
give visibly lower text scores than speaker-disjoint ones.

Generation is deterministic: same seed and espeak-ng version give byte-identical files.
"""
from __future__ import annotations

import functools
import shutil  # noqa: F401  (tests patch demo.shutil.which to hide espeak-ng)
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from ser_pipeline import SAMPLE_RATE
from ser_pipeline.audio import write_audio
from ser_pipeline.corpora import register_demo
from ser_pipeline.corpora.espeak import (build_once, check_ints, espeak_version, find_espeak, noise_floor,
                                         synthesise)
from ser_pipeline.corpora.iemocap import RELEASE_DIR, prepare_iemocap, script_id

DEMO_VERSION = 1  # bump whenever the output for a given seed changes
DONE_MARKER = ".done"
CLASSES = ("neu", "hap", "sad", "ang")
# Mild imbalance, as in IEMOCAP (neutral most frequent); the mean share is 1 so the corpus
# holds about sessions * 2 * 4 * utterances_per_speaker_per_class kept turns.
CLASS_SHARE = {"neu": 1.25, "hap": 1.1, "sad": 0.8, "ang": 0.85}
EXTRA_LABELS = ("fru", "xxx")  # dropped by the standard 4-class loader
EXTRA_SHARE = 0.08

# Prosody per class: espeak pitch (-p, 0-99), SSML pitch range (%), rate (-s, words/min),
# amplitude (-a, 0-200). The jitters are large on purpose: classes overlap.
CLASS_PROSODY = {"neu": (47, 90, 165, 95), "hap": (65, 145, 185, 115), "sad": (35, 55, 135, 70),
                 "ang": (57, 125, 190, 145), "fru": (50, 110, 175, 120)}
UTTERANCE_SD = (7, 25, 15, 18)
SPEAKER_SD = (4, 10, 8, 6)
PROSODY_LIMITS = ((5, 95), (20, 250), (90, 280), (30, 190))
SPEAKER_GAIN_SD_DB, UTTERANCE_GAIN_SD_DB = 1.0, 2.5

# Wording: share of turns carrying a phrase of their emotion, of the rest carrying a neutral
# filler, of turns with a stray phrase of another emotion, and of scripted turns whose line
# was written for the emotion the actor actually produced.
P_COLOUR, P_FILLER, P_LEAK, P_ON_SCRIPT = 0.65, 0.5, 0.1, 0.8

VOICES = {"F": ("en-us+f1", "en+f2", "en-gb-x-rp+f3", "en-us+f4", "en-gb-scotland+f5"),
          "M": ("en-us+m1", "en+m3", "en-gb-x-rp+m2", "en-029+m4", "en-us-nyc+m6")}
IMPROS = tuple(f"impro{i:02d}" for i in range(1, 9))
SCRIPTS = ("script01_1", "script02_2", "script03_1")
SUFFIX_SESSION = 3  # its M-led dialogues get IEMOCAP-style part letters (impro..a, script..b)
GAP_SECONDS, TAIL_SECONDS = (0.3, 1.0), 0.5


@dataclass(frozen=True)
class DemoUtterance:
    utt_id: str
    label: str          # as written to EmoEvaluation: exc, fru and xxx included
    text: str
    voice: str
    pitch: int
    pitch_range: int
    rate: int
    amplitude: int
    gain_db: float      # recording level applied after synthesis
    gap_before: float   # seconds of silence before the turn in the dialogue wav


@dataclass(frozen=True)
class DemoDialog:
    name: str           # e.g. Ses01F_script01_1
    session: str        # e.g. Ses01
    utterances: tuple[DemoUtterance, ...]


def plan_demo_corpus(seed: int = 0, utterances_per_speaker_per_class: int = 12,
                     sessions: int = 5) -> list[DemoDialog]:
    """Everything about the corpus except the audio samples: cheap, and what tests compare to."""
    seed, n, sessions = _check_sizes(seed, utterances_per_speaker_per_class, sessions)
    rng = np.random.default_rng(seed)
    scripts = _ScriptBook(rng)
    dialogs = []
    for s in range(1, sessions + 1):
        dialogs.extend(_plan_session(s, n, rng, scripts))
    return dialogs


@register_demo("iemocap")
def generate_demo_corpus(out_dir, seed: int = 0, utterances_per_speaker_per_class: int = 12,
                         sessions: int = 5) -> Path:
    """Write ``out_dir/IEMOCAP_full_release`` (unless already complete) and return its path.

    The tree is built under a temporary name and renamed when complete, and ``out_dir/.done``
    (holding the parameters) is written after that, so an interrupted run never looks done
    and a rerun with the same parameters costs nothing.
    """
    out_dir = Path(out_dir)
    release, marker = out_dir / RELEASE_DIR, out_dir / DONE_MARKER
    seed, n, sessions = _check_sizes(seed, utterances_per_speaker_per_class, sessions)
    params = {"version": DEMO_VERSION, "seed": seed, "utterances_per_speaker_per_class": n,
              "sessions": sessions}

    def build(tmp: Path, exe: str, pool) -> None:
        plan = plan_demo_corpus(seed, n, sessions)
        for session in dict.fromkeys(d.session for d in plan):
            _render_session(tmp, [d for d in plan if d.session == session], seed, exe, pool)
        _write_readme(tmp, params, plan, exe)

    return build_once(release, marker, params, build)


def prepare_demo_corpus(out_dir, seed: int = 0, utterances_per_speaker_per_class: int = 12,
                        sessions: int = 5, audio_source: str = "dialog", improvised_only: bool = False):
    """Generate (if needed) and load the demo corpus as the standard 4-class set (excited
    merged into happy); its manifest's corpus name is 'demo'."""
    release = generate_demo_corpus(out_dir, seed, utterances_per_speaker_per_class, sessions)
    df = prepare_iemocap(release, audio_source=audio_source, check_standard_counts=False,
                         improvised_only=improvised_only, merge_excited=True, classes=("neu", "hap", "sad", "ang"))
    df["corpus"] = "demo"
    return df


# ---------------------------------------------------------------- planning

def _check_sizes(seed, n, sessions) -> tuple[int, int, int]:
    return tuple(check_ints(seed=(seed, 0), utterances_per_speaker_per_class=(n, 1), sessions=(sessions, 1)))


@functools.lru_cache(maxsize=1)
def _bank() -> dict:
    text = resources.files("ser_pipeline").joinpath("data/demo_sentences.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


class _ScriptBook:
    """The lines of each script, written on first use and re-read by every later session."""

    def __init__(self, rng):
        self.rng, self.lines = rng, {}

    def line(self, script: str, role: str, emotion: str, index: int) -> str:
        lines = self.lines.setdefault((script, role, emotion), [])
        while len(lines) <= index:
            lines.append(_compose(self.rng, emotion))
        return lines[index]


def _dialog_names(s: int) -> list[str]:
    sess, suffix = f"Ses{s:02d}", s == SUFFIX_SESSION
    return [f"{sess}F_{IMPROS[(2 * s - 2) % len(IMPROS)]}",
            f"{sess}F_{SCRIPTS[(s - 1) % len(SCRIPTS)]}",
            f"{sess}M_{IMPROS[(2 * s - 1) % len(IMPROS)]}" + ("a" if suffix else ""),
            f"{sess}M_{SCRIPTS[s % len(SCRIPTS)]}" + ("b" if suffix else "")]


def _speaker_labels(n: int, k: int, rng) -> list[str]:
    """The EmoEvaluation labels of one speaker in one session, shuffled.

    Alternate happy turns are written as 'exc' (offset by speaker so even tiny corpora have
    both spellings), and a few fru/xxx turns are added for the loader to drop.
    """
    labels = []
    for c, share in CLASS_SHARE.items():
        count = max(1, round(n * share))
        labels += ["exc" if c == "hap" and (j + k) % 2 else c for j in range(count)]
    labels += [EXTRA_LABELS[(j + k) % 2] for j in range(max(1, round(EXTRA_SHARE * len(labels))))]
    return [str(x) for x in rng.permutation(labels)]


def _plan_session(s: int, n: int, rng, scripts: _ScriptBook) -> list[DemoDialog]:
    names = _dialog_names(s)
    turns = {name: {"F": [], "M": []} for name in names}
    profiles = {}
    for k, g in enumerate("FM"):
        profiles[g] = (VOICES[g][(s - 1) % len(VOICES[g])], rng.normal(0, SPEAKER_SD),
                       rng.normal(0, SPEAKER_GAIN_SD_DB))
        for i, label in enumerate(_speaker_labels(n, k, rng)):
            turns[names[i % len(names)]][g].append(label)
    dialogs = []
    for name in names:
        lead = name[5]
        order = _interleave(turns[name][lead], turns[name]["M" if lead == "F" else "F"], lead)
        counters, used = {"F": 0, "M": 0}, {}
        utterances = []
        for g, label in order:
            utt_id = f"{name}_{g}{counters[g]:03d}"
            counters[g] += 1
            text = _turn_text(rng, scripts, name, g, label, used)
            utterances.append(_turn(rng, utt_id, label, text, profiles[g]))
        dialogs.append(DemoDialog(name, f"Ses{s:02d}", tuple(utterances)))
    return dialogs


def _interleave(first: list, second: list, lead: str):
    other = "M" if lead == "F" else "F"
    out = []
    for i in range(max(len(first), len(second))):
        if i < len(first):
            out.append((lead, first[i]))
        if i < len(second):
            out.append((other, second[i]))
    return out


def _emotion_of(label: str, rng) -> str:
    return {"exc": "hap", "fru": "ang"}.get(label) or (label if label in CLASSES else str(rng.choice(CLASSES)))


def _turn_text(rng, scripts: _ScriptBook, dialog: str, role: str, label: str, used: dict) -> str:
    emotion = _emotion_of(label, rng)
    if "_script" not in dialog:
        return _compose(rng, emotion)
    if rng.random() > P_ON_SCRIPT:  # the actor played this line differently from the script
        emotion = str(rng.choice([c for c in CLASSES if c != emotion]))
    index = used.get((role, emotion), 0)
    used[(role, emotion)] = index + 1
    return scripts.line(script_id(dialog), role, emotion, index)


def _compose(rng, emotion: str) -> str:
    bank = _bank()
    frame = str(rng.choice(bank["frames"]))
    pre = suf = None
    if rng.random() < P_COLOUR:
        phrases, r = bank["emotion"][emotion], rng.random()
        if r < 0.85:
            pre = str(rng.choice(phrases["prefix"])) if r < 0.5 else None
            suf = None if r < 0.5 else str(rng.choice(phrases["suffix"]))
        else:
            pre, suf = str(rng.choice(phrases["prefix"])), str(rng.choice(phrases["suffix"]))
    elif rng.random() < P_FILLER:
        slot = "prefix" if rng.random() < 0.6 else "suffix"
        pick = str(rng.choice(bank["filler"][slot]))
        pre, suf = (pick, None) if slot == "prefix" else (None, pick)
    if rng.random() < P_LEAK:
        other = bank["emotion"][str(rng.choice([c for c in CLASSES if c != emotion]))]
        if pre is None:
            pre = str(rng.choice(other["prefix"]))
        elif suf is None:
            suf = str(rng.choice(other["suffix"]))
    return _join(pre, frame, suf)


def _join(pre: str | None, frame: str, suf: str | None) -> str:
    body = frame
    if pre:
        first = frame.split(" ", 1)[0]
        keep = first in ("I", "I'm", "I've") or not pre.endswith(",")
        body = f"{pre} {frame if keep else frame[0].lower() + frame[1:]}"
    return f"{body}, {suf}" if suf else f"{body}."


def _turn(rng, utt_id: str, label: str, text: str, profile) -> DemoUtterance:
    voice, offset, speaker_gain = profile
    cls = label if label in CLASS_PROSODY else ("hap" if label == "exc" else str(rng.choice(CLASSES)))
    values = np.asarray(CLASS_PROSODY[cls], float) + offset + rng.normal(0, UTTERANCE_SD)
    pitch, prange, rate, amp = (int(np.clip(round(v), lo, hi)) for v, (lo, hi) in zip(values, PROSODY_LIMITS))
    gain = round(float(speaker_gain + rng.normal(0, UTTERANCE_GAIN_SD_DB)), 3)
    gap = round(float(rng.uniform(*GAP_SECONDS)), 3)
    return DemoUtterance(utt_id, label, text, voice, pitch, prange, rate, amp, gain, gap)


# ---------------------------------------------------------------- rendering

_espeak_exe = find_espeak  # kept for benchmarks/bench_extractors.py


def _synthesise(exe: str, u: DemoUtterance) -> np.ndarray:
    return synthesise(exe, u.text, voice=u.voice, pitch=u.pitch, pitch_range=u.pitch_range, rate=u.rate,
                      amplitude=u.amplitude, name=u.utt_id)


def _render_session(release: Path, dialogs: list[DemoDialog], seed: int, exe: str, pool) -> None:
    utts = [u for d in dialogs for u in d.utterances]
    audio = dict(zip((u.utt_id for u in utts), pool.map(lambda u: _synthesise(exe, u), utts)))
    for d in dialogs:
        _write_dialog(release / f"Session{int(d.session[3:])}", d, audio, seed)


def _write_dialog(session_dir: Path, d: DemoDialog, audio: dict, seed: int) -> None:
    spans, t = [], 0
    for u in d.utterances:
        t += _aligned(u.gap_before * SAMPLE_RATE)
        spans.append((t, t + _aligned(len(audio[u.utt_id]))))
        t = spans[-1][1]
    x = noise_floor(seed, d.name, t + int(TAIL_SECONDS * SAMPLE_RATE))
    for u, (a, b) in zip(d.utterances, spans):
        y = audio[u.utt_id]
        x[a:a + len(y)] += y * np.float32(10 ** (u.gain_db / 20))
    x = np.clip(x, -0.99, 0.99)
    write_audio(session_dir / "dialog" / "wav" / f"{d.name}.wav", x)
    evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    transcript = []
    for u, (a, b) in zip(d.utterances, spans):
        start, end = a / SAMPLE_RATE, b / SAMPLE_RATE
        write_audio(session_dir / "sentences" / "wav" / d.name / f"{u.utt_id}.wav", x[a:b])
        evaluation += _evaluation_block(u, start, end)
        transcript.append(f"{u.utt_id} [{start:08.4f}-{end:08.4f}]: {u.text}")
    (session_dir / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
    (session_dir / "dialog" / "EmoEvaluation" / f"{d.name}.txt").write_text("\n".join(evaluation) + "\n")
    (session_dir / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
    (session_dir / "dialog" / "transcriptions" / f"{d.name}.txt").write_text("\n".join(transcript) + "\n")


def _aligned(samples: float) -> int:
    """Round up to whole 0.5 ms, so the 4-decimal EmoEvaluation times are exact sample
    positions and dialog-mode cuts equal the sentence wavs bit for bit."""
    step = SAMPLE_RATE // 2000
    return int(np.ceil(round(samples) / step)) * step


_CATEGORY = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "sad": "Sadness",
             "ang": "Anger", "fru": "Frustration"}
_VAD = {"neu": (3.0, 2.5, 2.5), "hap": (4.0, 3.0, 3.0), "exc": (4.0, 3.5, 3.0), "sad": (2.0, 2.0, 2.0),
        "ang": (1.5, 4.0, 4.0), "fru": (2.0, 3.5, 3.5), "xxx": (2.5, 3.0, 3.0)}


def _evaluation_block(u: DemoUtterance, start: float, end: float) -> list[str]:
    """One turn as IEMOCAP writes it: the majority line, then per-annotator lines."""
    v, a, dom = _VAD[u.label]
    votes = ["Anger", "Sadness", "Neutral"] if u.label == "xxx" else [_CATEGORY[u.label]] * 3
    return ([f"[{start:.4f} - {end:.4f}]\t{u.utt_id}\t{u.label}\t[{v:.4f}, {a:.4f}, {dom:.4f}]"]
            + [f"C-E{i + 1}:\t{vote};\t()" for i, vote in enumerate(votes)]
            + [f"A-E{i + 1}:\tval {v:.0f}; act {a:.0f}; dom  {dom:.0f};\t()" for i in range(2)] + [""])


def _write_readme(release: Path, params: dict, plan: list[DemoDialog], exe: str) -> None:
    version = espeak_version(exe)
    labels = [u.label for d in plan for u in d.utterances]
    counts = ", ".join(f"{lab} {labels.count(lab)}" for lab in ("neu", "hap", "exc", "sad", "ang", "fru", "xxx"))
    (release / "README.demo.txt").write_text(
        "SYNTHETIC DEMO CORPUS - this is NOT IEMOCAP.\n\n"
        "Generated by ser_pipeline.corpora.demo.generate_demo_corpus with the IEMOCAP_full_release\n"
        "layout so that the pipeline can run end to end without the licensed corpus. Speech is\n"
        "synthesised with espeak-ng; emotions are acted through prosody and wording, both noisy on\n"
        "purpose. Results on it say nothing about real emotion recognition.\n\n"
        f"seed: {params['seed']}\n"
        f"utterances_per_speaker_per_class: {params['utterances_per_speaker_per_class']}\n"
        f"sessions: {params['sessions']}\n"
        f"generator version: {DEMO_VERSION}\n"
        f"espeak-ng: {version}\n"
        f"EmoEvaluation labels: {counts}\n")


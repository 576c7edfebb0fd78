"""The synthetic demo corpus: layout, agreement with its plan, determinism, done-marker."""
from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.corpora import demo
from ser_pipeline.corpora.demo import generate_demo_corpus, plan_demo_corpus, prepare_demo_corpus
from ser_pipeline.corpora.iemocap import prepare_iemocap
from ser_pipeline.errors import ConfigError, CorpusError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
SIZE = dict(seed=3, utterances_per_speaker_per_class=1, sessions=2)
KEPT = {"neu": "neu", "hap": "hap", "exc": "hap", "sad": "sad", "ang": "ang"}


def _expected(plan):
    return {u.utt_id: (KEPT[u.label], u.text) for d in plan for u in d.utterances if u.label in KEPT}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return generate_demo_corpus(tmp_path_factory.mktemp("demo"), **SIZE)


@needs_espeak
@pytest.mark.parametrize("audio_source", ["dialog", "sentences"])
def test_loader_reads_back_what_was_planned(release, audio_source):
    df = prepare_iemocap(release, audio_source=audio_source, check_standard_counts=False,
                         merge_excited=True, classes=("neu", "hap", "sad", "ang"))
    expected = _expected(plan_demo_corpus(**SIZE))
    assert dict(zip(df.utt_id, zip(df.label, df.text))) == expected
    assert set(df.speaker) == {"Ses01F", "Ses01M", "Ses02F", "Ses02M"}
    assert all(df.speaker.str[-1] == df.gender)
    assert Counter(df.label) == {"neu": 4, "hap": 4, "sad": 4, "ang": 4}
    assert set(df["mode"]) == {"improvised", "scripted"}
    assert (df.duration > 0.3).all()


@needs_espeak
def test_layout_exercises_the_loader_rules(release):
    labels = Counter(line.split("\t")[2] for f in release.glob("Session*/dialog/EmoEvaluation/*.txt")
                     for line in f.read_text().splitlines() if line.startswith("["))
    assert labels["exc"] > 0 and labels["fru"] > 0 and labels["xxx"] > 0
    info = sf.info(str(next(release.glob("Session1/dialog/wav/*.wav"))))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert "seed: 3" in (release / "README.demo.txt").read_text()
    assert (release.parent / ".done").is_file()


@needs_espeak
def test_sentence_wavs_are_cuts_of_the_dialog_wav(release):
    df = prepare_iemocap(release, audio_source="dialog", check_standard_counts=False)
    row = df.iloc[1]
    dialog, _ = sf.read(row.audio_path, dtype="int16")
    sentence, _ = sf.read(str(release / "Session1/sentences/wav" / row.utt_id.rsplit("_", 1)[0]
                              / f"{row.utt_id}.wav"), dtype="int16")
    start = int(round(row.start * 16000))
    assert np.array_equal(sentence, dialog[start:start + len(sentence)])


@needs_espeak
def test_same_seed_same_bytes(release, tmp_path):
    again = generate_demo_corpus(tmp_path / "again", **SIZE)
    for rel in ("Session2/dialog/wav/Ses02F_impro03.wav", "Session1/dialog/transcriptions/Ses01F_script01_1.txt"):
        assert (again / rel).read_bytes() == (release / rel).read_bytes()
    other = generate_demo_corpus(tmp_path / "other", **{**SIZE, "seed": 4})
    rel = "Session1/dialog/transcriptions/Ses01F_script01_1.txt"
    assert (other / rel).read_bytes() != (release / rel).read_bytes()


@needs_espeak
def test_done_marker_skips_and_parameter_change_rebuilds(tmp_path, monkeypatch):
    out = tmp_path / "d"
    release = generate_demo_corpus(out, **SIZE)
    calls = []
    monkeypatch.setattr(demo, "_render_session", lambda *a, **k: calls.append(a))
    assert generate_demo_corpus(out, **SIZE) == release
    assert calls == []
    generate_demo_corpus(out, **{**SIZE, "sessions": 1})
    assert calls  # other parameters: regenerated


@needs_espeak
def test_interrupted_run_never_looks_complete(tmp_path, monkeypatch):
    def boom(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "_render_session", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_demo_corpus(tmp_path, **SIZE)
    assert list(tmp_path.iterdir()) == []


@needs_espeak
def test_prepare_demo_corpus_names_the_corpus(release):
    df = prepare_demo_corpus(release.parent, **SIZE)
    assert set(df.corpus) == {"demo"} and len(df) == 16


def test_scripts_recur_across_sessions_with_the_same_lines():
    plan = plan_demo_corpus(seed=0, utterances_per_speaker_per_class=4, sessions=3)
    texts = {}
    for d in plan:
        if "_script" in d.name:
            script = demo.script_id(d.name)
            texts.setdefault(script, {}).setdefault(d.session, {u.text for u in d.utterances})
    shared = [s for s, by_session in texts.items() if len(by_session) > 1]
    assert shared
    for s in shared:
        first, *rest = texts[s].values()
        assert all(first & other for other in rest)
    assert any(d.name == "Ses03M_script01_1b" for d in plan)  # part-letter suffix


def test_default_size_and_balance():
    plan = plan_demo_corpus()
    kept = Counter(KEPT[u.label] for d in plan for u in d.utterances if u.label in KEPT)
    assert 400 <= sum(kept.values()) <= 560
    assert min(kept.values()) / max(kept.values()) > 0.5


def test_bad_sizes_and_missing_espeak(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="sessions"):
        generate_demo_corpus(tmp_path, sessions=0)
    with pytest.raises(ConfigError, match="seed"):
        plan_demo_corpus(seed=-1)
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    with pytest.raises(CorpusError, match="espeak-ng not found"):
        generate_demo_corpus(tmp_path, **SIZE)

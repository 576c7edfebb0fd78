"""FAU-AIBO loader on tiny trees in the IS2009 challenge layout, and the AIBO-layout demo."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.config import registry
from ser_pipeline.corpora import prepare_corpus
from ser_pipeline.corpora import demo_aibo, fau_aibo
from ser_pipeline.corpora.demo_aibo import generate_demo_aibo, plan_demo_aibo, prepare_demo_aibo
from ser_pipeline.corpora.fau_aibo import prepare_fau_aibo
from ser_pipeline.errors import CorpusError

SR = 16000
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

# chunk -> (5-class, 2-class); Ohm_01 and Mont_01 are different children.
CHUNKS = {
    "Ohm_01_001_00": ("N", "IDL"),
    "Ohm_01_001_01": ("A", "NEG"),
    "Ohm_02_003_00": ("E", "NEG"),
    "Mont_01_002_00": ("P", "IDL"),
    "Mont_01_004_00": ("R", "NEG"),
    "Mont_03_001_00": ("N", "IDL"),
}


def build_tree(root, chunks=CHUNKS, five_extra="", two_extra=""):
    labels = root / "labels" / "IS2009EmotionChallenge"
    labels.mkdir(parents=True)
    (labels / "chunk_labels_5cl_corpus.txt").write_text(
        "".join(f"{c} {five} 1.0\n" for c, (five, _) in chunks.items()) + five_extra)
    (labels / "chunk_labels_2cl_corpus.txt").write_text(
        "".join(f"{c} {two} 0.67\n" for c, (_, two) in chunks.items()) + two_extra)
    (root / "wav").mkdir()
    for i, c in enumerate(chunks):
        sf.write(str(root / "wav" / f"{c}.wav"), np.zeros(int((0.5 + 0.25 * i) * SR), np.float32), SR,
                 subtype="PCM_16")
    return root


@pytest.fixture
def tree(tmp_path):
    return build_tree(tmp_path / "aibo")


def test_speakers_sessions_splits_and_both_label_sets(tree):
    df = prepare_fau_aibo(tree, check_standard_counts=False).set_index("utt_id")
    assert df.loc["Ohm_01_001_01", ["speaker", "session", "split", "label", "label_2cl"]].tolist() == [
        "Ohm_01", "Ohm", "train", "A", "NEG"]
    assert df.loc["Mont_01_002_00", ["speaker", "session", "split", "label", "label_2cl"]].tolist() == [
        "Mont_01", "Mont", "test", "P", "IDL"]
    assert df.speaker.nunique() == 4                       # Ohm_01 != Mont_01
    assert df.loc["Ohm_02_003_00", "duration"] == pytest.approx(1.0)
    assert (df.rating_confidence == 1.0).all() and (df.rating_confidence_2cl == 0.67).all()
    assert (df.text == "").all() and (df.gender == "").all()
    assert df.attrs["report"]["chunks"] == {"Ohm": 3, "Mont": 3}


def test_label_files_must_list_the_same_chunks(tmp_path):
    root = build_tree(tmp_path / "a", five_extra="Ohm_09_001_00 N 1.0\n")
    (root / "wav" / "Ohm_09_001_00.wav").write_bytes((root / "wav" / "Ohm_01_001_00.wav").read_bytes())
    with pytest.raises(CorpusError, match=r"1 chunk\(s\) only in chunk_labels_5cl_corpus.txt: \['Ohm_09_001_00'\]"):
        prepare_fau_aibo(root, check_standard_counts=False)


def test_unknown_label_names_file_and_line(tmp_path):
    root = build_tree(tmp_path / "a", two_extra="Ohm_09_001_00 NEU 1.0\n")
    with pytest.raises(CorpusError, match=r"chunk_labels_2cl_corpus.txt:7: unknown label 'NEU'"):
        prepare_fau_aibo(root, check_standard_counts=False)


def test_malformed_lines(tmp_path):
    with pytest.raises(CorpusError, match=r"5cl_corpus.txt:7: chunk id 'Foo_01_001_00'"):
        prepare_fau_aibo(build_tree(tmp_path / "a", five_extra="Foo_01_001_00 N 1\n"), check_standard_counts=False)
    with pytest.raises(CorpusError, match=r"5cl_corpus.txt:7: expected '<chunk> <label> <confidence>'"):
        prepare_fau_aibo(build_tree(tmp_path / "b", five_extra="Ohm_01_009_00 N\n"), check_standard_counts=False)
    with pytest.raises(CorpusError, match=r"5cl_corpus.txt:7: chunk Ohm_01_001_00 listed twice"):
        prepare_fau_aibo(build_tree(tmp_path / "c", five_extra="Ohm_01_001_00 N 1\n"), check_standard_counts=False)


def test_missing_wav_is_an_error(tree):
    (tree / "wav" / "Mont_03_001_00.wav").unlink()
    with pytest.raises(CorpusError, match=r"1 labelled chunk\(s\) have no wav:\n  .*Mont_03_001_00\.wav"):
        prepare_fau_aibo(tree, check_standard_counts=False)


def test_standard_counts_on_and_off(tree, monkeypatch):
    with pytest.raises(CorpusError, match="Ohm chunks: found 3, expected 9959.*check_standard_counts=False"):
        prepare_fau_aibo(tree)
    assert len(prepare_fau_aibo(tree, check_standard_counts=False)) == 6
    monkeypatch.setattr(fau_aibo, "STANDARD_CHUNKS", {"Ohm": 3, "Mont": 3})
    monkeypatch.setattr(fau_aibo, "STANDARD_5CL", {"Ohm": {"A": 1, "E": 1, "N": 1, "P": 0, "R": 0},
                                                   "Mont": {"A": 0, "E": 0, "N": 1, "P": 1, "R": 1}})
    monkeypatch.setattr(fau_aibo, "STANDARD_2CL_TOTAL", {"IDL": 3, "NEG": 3})
    monkeypatch.setattr(fau_aibo, "STANDARD_SPEAKERS", 4)
    assert prepare_fau_aibo(tree).attrs["report"]["standard_counts_checked"] is True
    monkeypatch.setattr(fau_aibo, "STANDARD_SPEAKERS", 3)   # e.g. speaker = child number alone
    with pytest.raises(CorpusError, match="speakers: found 4, expected 3"):
        prepare_fau_aibo(tree)


def test_standard_counts_match_the_papers_totals():
    five = Counter()
    for school in fau_aibo.STANDARD_5CL.values():
        five.update(school)
    assert five == {"A": 1492, "E": 3601, "N": 10967, "P": 889, "R": 1267}   # Triantafyllopoulos et al., Table 1
    assert {s: sum(c.values()) for s, c in fau_aibo.STANDARD_5CL.items()} == fau_aibo.STANDARD_CHUNKS
    assert sum(fau_aibo.STANDARD_2CL_TOTAL.values()) == sum(fau_aibo.STANDARD_CHUNKS.values())


def test_registered_loader(tree):
    assert registry("loader")["fau_aibo"] == "ser_pipeline.corpora.fau_aibo"
    df = prepare_corpus("fau_aibo", tree, corpus="aibo", check_standard_counts=False)
    assert set(df.corpus) == {"aibo"}


# ---------------------------------------------------------------- the demo corpus

SMALL = dict(seed=1, speakers_per_school=2, chunks_per_speaker=5)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return generate_demo_aibo(tmp_path_factory.mktemp("daibo"), **SMALL)


@needs_espeak
def test_demo_reads_back_what_was_planned(demo_root):
    df = prepare_fau_aibo(demo_root, check_standard_counts=False)
    plan = plan_demo_aibo(**SMALL)
    assert {r.utt_id: (r.label, r.label_2cl) for r in df.itertuples()} == {c.chunk: (c.label, c.label_2cl)
                                                                            for c in plan}
    assert {s for s in df.speaker if s.startswith("Ohm")} == {"Ohm_31", "Ohm_32"}
    assert df.duration.between(0.4, 2.5).all()
    assert (df[df.label == "N"].groupby("speaker").size() >= 3).all() and df.speaker.nunique() == 4
    info = sf.info(df.audio_path.iloc[0])
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


@needs_espeak
def test_demo_same_seed_same_bytes(demo_root, tmp_path):
    again = generate_demo_aibo(tmp_path / "again", **SMALL)
    files = sorted(p.relative_to(demo_root) for p in demo_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((demo_root / f).read_bytes() == (again / f).read_bytes() for f in files)
    other = generate_demo_aibo(tmp_path / "other", **{**SMALL, "seed": 2})
    assert sorted(p.name for p in (other / "wav").iterdir()) != sorted(p.name for p in (demo_root / "wav").iterdir())


@needs_espeak
def test_demo_done_marker_and_interrupted_run(tmp_path, monkeypatch):
    out = tmp_path / "d"
    root = generate_demo_aibo(out, **SMALL)
    assert json.loads((out / ".done").read_text())["chunks_per_speaker"] == 5
    monkeypatch.setattr(demo_aibo, "_render", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    assert generate_demo_aibo(out, **SMALL) == root
    with pytest.raises(KeyboardInterrupt):
        generate_demo_aibo(tmp_path / "e", **SMALL)
    assert list((tmp_path / "e").iterdir()) == []
    assert set(prepare_demo_aibo(out, **SMALL).corpus) == {"demo_aibo"}


def test_demo_plan_default_size_and_balance():
    plan = plan_demo_aibo()
    assert 300 <= len(plan) <= 500
    labels = Counter(c.label for c in plan)
    assert labels.most_common(1)[0][0] == "N" and labels["E"] > max(labels["A"], labels["P"], labels["R"])
    speakers = {c.chunk.rsplit("_", 2)[0] for c in plan}
    assert {"Ohm_31", "Ohm_32"} <= speakers and len(speakers) == 20
    assert {s[-2:] for s in speakers if s.startswith("Ohm")} & {s[-2:] for s in speakers if s.startswith("Mont")}
    neg = Counter((c.label, c.label_2cl) for c in plan)
    assert neg[("A", "NEG")] > neg[("A", "IDL")] and neg[("N", "IDL")] > 10 * neg[("N", "NEG")]

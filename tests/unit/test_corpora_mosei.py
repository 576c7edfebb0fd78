"""CMU-MOSEI loader on tiny trees in the real layout, Li et al.'s rule, and the MOSEI-layout demo."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_pipeline.config import registry
from ser_pipeline.corpora import prepare_corpus
from ser_pipeline.corpora import cmu_mosei, demo_mosei
from ser_pipeline.corpora.cmu_mosei import (emotion_labels, folds_digest, li2020_correct, li2020_subset,
                                            load_folds, prepare_cmu_mosei)
from ser_pipeline.corpora.demo_mosei import generate_demo_mosei, plan_demo_mosei, prepare_demo_mosei
from ser_pipeline.errors import ConfigError, CorpusError

SR = 16000
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

# (start, end, [sentiment, happy, sad, anger, surprise, disgust, fear]) per .csd row, in row
# order, which is NOT time order; transcripts list the same times in time order plus a
# sentence with no label, so clip numbers and row indices disagree everywhere.
VIDEO_A = "ab_c-"            # ids may contain '_' and '-'
VIDEO_B = "-x_"              # starts with '-'; its trailing '_' runs into the '___' separator
ROWS = {
    VIDEO_A: [(10.0, 12.0, [2, 2.0, 0, 0, 0, 0, 0]),          # row 0: happy, the last sentence
              (-0.4, 3.0, [-1, 0, 1.333333, 0.333333, 0, 0, 0]),  # row 1: sad, negative start
              (5.0, 8.25, [0, 0, 0, 0, 0, 0, 0])],             # row 2: neutral
    VIDEO_B: [(4.5, 6.0, [0, 0.666667, 0.666667, 0, 0, 0, 0]),  # row 0: happy/sad tie -> hap
              (1.0, 3.5, [-2, 0, 0, 1.0, 0, 1.0, 0])],          # row 1: anger/disgust tie -> ang
}
TRANSCRIPTS = {
    VIDEO_A: [(0, -0.4, 3.0, "I lost it all___ again"),       # text containing the separator
              (1, 3.5, 4.5, "unlabelled filler"),
              (2, 5.0, 8.25, "the bus leaves at nine"),
              (3, 10.0, 12.0, "this is wonderful")],
    VIDEO_B: [(0, 1.0, 3.5, "stop doing that")],               # row 0 of VIDEO_B has no line
}
FOLDS_PY = ("raise SystemExit('the folds file must never be executed')\n"
            f"standard_train_fold=[{VIDEO_A!r}]\nstandard_test_fold=[{VIDEO_B!r}, 'noLabels01']\n"
            "standard_valid_fold=[]\n")


def build_tree(root, rows=ROWS, transcripts=TRANSCRIPTS, wav_seconds=14.0, folds=FOLDS_PY,
               dimension_names=cmu_mosei.DIMENSIONS):
    import h5py

    raw = root / "Raw"
    (raw / "Audio" / "Full" / "WAV_16000").mkdir(parents=True)
    (raw / "Transcript" / "Segmented" / "Combined").mkdir(parents=True)
    with h5py.File(root / "CMU_MOSEI_Labels.csd", "w") as f:
        group = f.create_group("All Labels")
        for video, items in rows.items():
            entry = group.create_group(f"data/{video}")
            entry.create_dataset("features", data=np.array([r[2] for r in items], dtype=float))
            entry.create_dataset("intervals", data=np.array([r[:2] for r in items], dtype=float))
            t = np.arange(int(wav_seconds * SR)) / SR
            sf.write(str(raw / "Audio" / "Full" / "WAV_16000" / f"{video}.wav"),
                     (0.05 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), SR, subtype="PCM_16")
        if dimension_names is not None:
            ds = group.create_dataset("metadata/dimension names", (1,), dtype=h5py.special_dtype(vlen=str))
            ds[0] = json.dumps(list(dimension_names))
    for video, lines in transcripts.items():
        (raw / "Transcript" / "Segmented" / "Combined" / f"{video}.txt").write_text(
            "".join(f"{video}___{c}___{s}___{e}___{text}\n" for c, s, e, text in lines))
    if folds is not None:
        (root / "cmu_mosei_std_folds.py").write_text(folds)
    return root


@pytest.fixture
def tree(tmp_path):
    return build_tree(tmp_path / "mosei")


def _load(root, **kw):
    return prepare_cmu_mosei(root, check_standard_counts=False, **kw).set_index("utt_id")


def test_labels_and_text_land_on_their_own_segment(tree):
    df = _load(tree)
    a = {f"{VIDEO_A}[{i}]" for i in range(3)}
    assert set(df.index) == a | {f"{VIDEO_B}[0]", f"{VIDEO_B}[1]"}
    assert df.loc[f"{VIDEO_A}[0]", ["start", "end", "label", "text"]].tolist() == [10.0, 12.0, "hap",
                                                                                  "this is wonderful"]
    assert df.loc[f"{VIDEO_A}[1]", ["label", "text"]].tolist() == ["sad", "I lost it all___ again"]
    assert df.loc[f"{VIDEO_A}[2]", ["label", "text"]].tolist() == ["neu", "the bus leaves at nine"]
    assert df.loc[f"{VIDEO_A}[1]", "rating_sad"] == pytest.approx(1.333333)
    assert df.loc[f"{VIDEO_A}[0]", "rating_sentiment"] == 2
    assert (df.loc[list(a), "speaker"] == VIDEO_A).all() and (df["session"] == "").all()
    assert df.loc[f"{VIDEO_A}[2]", "duration"] == pytest.approx(3.25)
    assert all(p.endswith(f"/{s}.wav") for p, s in zip(df.audio_path, df.speaker))


def test_ties_go_to_the_earlier_csd_column(tree):
    df = _load(tree)
    assert df.loc[f"{VIDEO_B}[0]", "label"] == "hap"   # happy == sad
    assert df.loc[f"{VIDEO_B}[1]", "label"] == "ang"   # anger == disgust
    assert list(emotion_labels([[0, 0, 0, 0.5, 0.5, 0], [0] * 6, [0, 0, 0, 0, 0, 0.3]])) == ["sur", "neu", "fea"]


def test_clipping_and_missing_transcripts_are_reported(tree):
    df = prepare_cmu_mosei(tree, check_standard_counts=False)
    report = df.attrs["report"]
    assert df.set_index("utt_id").loc[f"{VIDEO_A}[1]", "start"] == 0.0
    assert report["negative_starts"] == 1
    assert report["segments_without_transcript"] == 1
    assert df.set_index("utt_id").loc[f"{VIDEO_B}[0]", "text"] == ""
    assert any("text ''" in n for n in report["notes"])


def test_folds_file_is_parsed_not_run(tree):
    df = prepare_cmu_mosei(tree, check_standard_counts=False)
    assert dict(zip(df.utt_id, df.split)) == {f"{VIDEO_A}[{i}]": "train" for i in range(3)} | {
        f"{VIDEO_B}[0]": "test", f"{VIDEO_B}[1]": "test"}
    report = df.attrs["report"]
    assert report["folds_source"].endswith("cmu_mosei_std_folds.py")
    assert report["fold_videos_without_labels"]["test"] == ["noLabels01"]
    assert report["folds_official"] is False


def test_folds_from_an_explicit_json_file_and_from_nowhere(tmp_path):
    root = build_tree(tmp_path / "m", folds=None)
    df = prepare_cmu_mosei(root, check_standard_counts=False)
    assert (df.split == "").all() and any("every split is empty" in n for n in df.attrs["report"]["notes"])
    folds = tmp_path / "folds.json"
    folds.write_text(json.dumps({"train": [VIDEO_B], "valid": [VIDEO_A], "test": []}))
    df = prepare_cmu_mosei(root, folds_file=folds, check_standard_counts=False)
    assert Counter(df.split) == {"valid": 3, "train": 2}


def test_folds_from_an_installed_sdk_without_importing_it(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "mmsdk"
    sdk = pkg.joinpath(*cmu_mosei.SDK_FOLDS_PATH[:-1])
    sdk.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('mmsdk must not be imported')\n")
    (sdk / "cmu_mosei_std_folds.py").write_text(FOLDS_PY.replace(VIDEO_B, "other"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    df = prepare_cmu_mosei(build_tree(tmp_path / "m", folds=None), check_standard_counts=False)
    assert df.attrs["report"]["folds_source"].startswith(str(pkg))
    assert Counter(df.split) == {"train": 3, "": 2}


def test_bad_folds_files(tmp_path):
    bad = tmp_path / "f.py"
    bad.write_text("standard_train_fold=['a', 'b']\nstandard_valid_fold=['b']\nstandard_test_fold=[]\n")
    with pytest.raises(CorpusError, match="two folds"):
        load_folds(bad)
    bad.write_text("standard_train_fold=['a']\nstandard_valid_fold=[]\n")
    with pytest.raises(CorpusError, match="fold 'test'"):
        load_folds(bad)
    bad.write_text("standard_train_fold=sorted(['a'])\nstandard_valid_fold=[]\nstandard_test_fold=[]\n")
    with pytest.raises(CorpusError, match="f.py:1: standard_train_fold is not a literal"):
        load_folds(bad)


def test_missing_wav_is_an_error_unless_allowed(tree):
    wav = tree / "Raw" / "Audio" / "Full" / "WAV_16000" / f"{VIDEO_B}.wav"
    wav.unlink()
    with pytest.raises(CorpusError, match=r"1 labelled video\(s\) have no wav:\n  .*-x_\.wav"):
        _load(tree)
    df = prepare_cmu_mosei(tree, check_standard_counts=False, allow_missing_audio=True)
    assert len(df) == 3 and df.attrs["report"]["segments_dropped_missing_audio"] == 2
    assert df.attrs["report"]["videos_without_audio"] == [VIDEO_B]


def test_out_of_range_rating_is_an_error_unless_allowed(tmp_path):
    rows = {**ROWS, VIDEO_B: [ROWS[VIDEO_B][0], (1.0, 3.5, [-2, 0, 0, 3.5, 0, 0, 0])]}
    root = build_tree(tmp_path / "m", rows=rows)
    with pytest.raises(CorpusError, match=r"CMU_MOSEI_Labels\.csd: 1 segment.*\n  -x_\[1\]: anger 3\.5 outside"):
        _load(root)
    df = prepare_cmu_mosei(root, check_standard_counts=False, allow_out_of_range=True)
    assert f"{VIDEO_B}[1]" not in set(df.utt_id)
    assert df.attrs["report"]["segments_dropped_out_of_range"] == [f"{VIDEO_B}[1]"]
    rows[VIDEO_B][1] = (1.0, 3.5, [-3.2, 0, 0, 1, 0, 0, 0])
    with pytest.raises(CorpusError, match="sentiment -3.2 outside"):
        _load(build_tree(tmp_path / "s", rows=rows))


def test_interval_past_the_end_of_the_wav(tmp_path):
    root = build_tree(tmp_path / "m", wav_seconds=12.05)   # VIDEO_A[0] ends at 12.0: fine
    assert len(_load(root)) == 5
    root = build_tree(tmp_path / "n", wav_seconds=11.95)   # 0.05 s short: clipped, counted
    df = prepare_cmu_mosei(root, check_standard_counts=False)
    assert df.set_index("utt_id").loc[f"{VIDEO_A}[0]", "end"] == pytest.approx(11.95)
    assert df.attrs["report"]["ends_clipped_to_audio"] == 1
    with pytest.raises(CorpusError, match=r"ab_c-\[0\]: ends at 12\.000 s, ab_c-\.wav is 11\.500 s long"):
        _load(build_tree(tmp_path / "o", wav_seconds=11.5))


def test_dimension_names_in_another_order_are_refused(tmp_path):
    names = ["sentiment", "sad", "happy", "anger", "surprise", "disgust", "fear"]
    with pytest.raises(CorpusError, match="not in the expected order"):
        _load(build_tree(tmp_path / "m", dimension_names=names))
    df = prepare_cmu_mosei(build_tree(tmp_path / "n", dimension_names=None), check_standard_counts=False)
    assert any("dimension names" in n for n in df.attrs["report"]["notes"])


def test_standard_counts(tree, monkeypatch):
    df = prepare_cmu_mosei(tree)  # 2 videos: not the full corpus, so counts are not checked
    assert df.attrs["report"]["standard_counts_checked"] is False
    monkeypatch.setattr(cmu_mosei, "STANDARD_VIDEOS", 2)
    with pytest.raises(CorpusError, match="segments: found 5, expected 23259.*check_standard_counts=False"):
        prepare_cmu_mosei(tree)
    monkeypatch.setattr(cmu_mosei, "STANDARD_SEGMENTS", 5)
    monkeypatch.setattr(cmu_mosei, "STANDARD_NEGATIVE_STARTS", 1)
    assert prepare_cmu_mosei(tree).attrs["report"]["standard_counts_checked"] is True
    folds = load_folds(tree / "cmu_mosei_std_folds.py")
    monkeypatch.setattr(cmu_mosei, "OFFICIAL_FOLDS_SHA256", folds_digest(folds))  # now "official"
    with pytest.raises(CorpusError, match="split 'train': found 3, expected 16327"):
        prepare_cmu_mosei(tree)
    monkeypatch.setattr(cmu_mosei, "STANDARD_SPLIT_SEGMENTS", {"train": 3, "valid": 0, "test": 2, "": 0})
    assert prepare_cmu_mosei(tree).attrs["report"]["standard_counts_checked"] is True


def test_registered_loader_and_option_errors(tree):
    assert registry("loader")["cmu_mosei"] == "ser_pipeline.corpora.cmu_mosei"
    df = prepare_corpus("cmu_mosei", tree, corpus="mosei", check_standard_counts=False)
    assert set(df.corpus) == {"mosei"} and len(df) == 5
    with pytest.raises(ConfigError, match="end_tolerance"):
        prepare_cmu_mosei(tree, end_tolerance=-1)
    (tree / "CMU_MOSEI_Labels.csd").unlink()
    with pytest.raises(CorpusError, match="CMU_MOSEI_Labels.csd not found"):
        prepare_cmu_mosei(tree)


# ---------------------------------------------------------------- Li et al. (2020)

def _rated(rows):
    cols = list(cmu_mosei.EMOTION_COLUMNS)
    return pd.DataFrame([dict(utt_id=f"u{i}", **dict(zip(cols, r))) for i, r in enumerate(rows)])


LI_ROWS = [
    (0, 0, 0, 0, 0, 0),          # u0 neutral
    (1, 0, 0, 0, 0, 0),          # u1 happy
    (0, 0.3, 0.6, 0, 0, 0),      # u2 sad and angry
    (0, 0, 0, 2, 0, 0),          # u3 surprise only: not in the subset
    (0, 0, 0, 0, 1, 1),          # u4 disgust and fear: not in the subset
    (0.3, 0, 0, 0, 0, 2),        # u5 happy (weakly) and fear
]


def test_li2020_subset():
    assert li2020_subset(_rated(LI_ROWS)).utt_id.tolist() == ["u0", "u1", "u2", "u5"]


def test_li2020_correct():
    df = _rated(LI_ROWS)
    pred = ["neu", "hap", "ang", "neu", "sad", "hap"]
    assert li2020_correct(df, pred).tolist() == [True, True, True, False, False, True]
    pred = ["hap", "neu", "sad", "neu", "neu", "neu"]
    assert li2020_correct(df, pred).tolist() == [False, False, True, False, False, False]
    with pytest.raises(ConfigError, match=r"\['sur'\]"):
        li2020_correct(df, ["sur"] * 6)
    with pytest.raises(ValueError, match="5 predictions for 6"):
        li2020_correct(df, ["neu"] * 5)


# ---------------------------------------------------------------- the demo corpus

SMALL = dict(seed=2, n_videos=3)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return generate_demo_mosei(tmp_path_factory.mktemp("dmosei"), **SMALL)


@needs_espeak
def test_demo_reads_back_what_was_planned(demo_root):
    df = prepare_cmu_mosei(demo_root, check_standard_counts=False).set_index("utt_id")
    expected = {}
    for v in plan_demo_mosei(**SMALL):
        for s in v.sentences:
            if s.row is not None:
                expected[f"{v.video}[{s.row}]"] = (emotion_labels([s.ratings[1:]])[0], s.text if s.transcribed else "",
                                                   v.split, s.ratings[0])
    assert {u: (r.label, r.text, r.split, r.rating_sentiment) for u, r in df.iterrows()} == expected
    assert (df.start >= 0).all() and (df.duration > 0.5).all()
    info = sf.info(df.audio_path.iloc[0])
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert "seed: 2" in (demo_root / "README.demo.txt").read_text()


@needs_espeak
def test_demo_same_seed_same_bytes(demo_root, tmp_path):
    again = generate_demo_mosei(tmp_path / "again", **SMALL)
    files = sorted(p.relative_to(demo_root) for p in demo_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((demo_root / f).read_bytes() == (again / f).read_bytes() for f in files)
    other = generate_demo_mosei(tmp_path / "other", **{**SMALL, "seed": 3})
    assert (other / "CMU_MOSEI_Labels.csd").read_bytes() != (demo_root / "CMU_MOSEI_Labels.csd").read_bytes()


@needs_espeak
def test_demo_done_marker_and_interrupted_run(tmp_path, monkeypatch):
    out = tmp_path / "d"
    root = generate_demo_mosei(out, **SMALL)
    assert json.loads((out / ".done").read_text())["n_videos"] == 3
    monkeypatch.setattr(demo_mosei, "_render", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    assert generate_demo_mosei(out, **SMALL) == root          # complete: not rebuilt
    with pytest.raises(KeyboardInterrupt):
        generate_demo_mosei(tmp_path / "e", **SMALL)
    assert list((tmp_path / "e").iterdir()) == []
    df = prepare_demo_mosei(out, **SMALL)
    assert set(df.corpus) == {"demo_mosei"}


def test_demo_plan_has_the_layout_traps():
    plan = plan_demo_mosei()
    rows = [s for v in plan for s in v.sentences if s.row is not None]
    assert 150 <= len(rows) <= 250
    assert any(v.video.startswith("-") for v in plan) and any(v.video.endswith("_") for v in plan)
    assert any([s.row for s in v.sentences if s.row is not None] != sorted(s.row for s in v.sentences
                                                                           if s.row is not None) for v in plan)
    assert any(s.row is None for v in plan for s in v.sentences)            # unlabelled sentences
    assert any(not s.transcribed for s in rows)                            # labelled, no transcript
    assert any(s.pads[0] > s.gap_before for v in plan for s in v.sentences[:1])  # negative start
    assert any(all(r == 0 for s in v.sentences for r in s.ratings) for v in plan)  # flat videos
    labels = Counter(emotion_labels([s.ratings[1:] for s in rows]))
    assert set(labels) == {"neu", "hap", "sad", "ang", "sur", "dis", "fea"}
    assert Counter(v.split for v in plan).keys() == {"train", "valid", "test", ""}
    emotions = np.array([s.ratings[1:] for s in rows])
    assert ((emotions > 0).sum(axis=1) > 1).any()                           # multi-label rows

"""IEMOCAP loader on tiny trees with the real layout, built by each test."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.config import registry
from ser_pipeline.corpora import prepare_corpus
from ser_pipeline.corpora import iemocap
from ser_pipeline.corpora.iemocap import STANDARD_CLASSES, prepare_iemocap, script_id
from ser_pipeline.errors import ConfigError, CorpusError

SR = 16000


def _wav(path, seconds, freq=220.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * SR))) / SR
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, subtype="PCM_16")


def build_tree(root, turns):
    """Write an IEMOCAP_full_release tree; turns are (utt_id, label, start, end, text)."""
    release = root / "IEMOCAP_full_release"
    dialogs = {}
    for turn in turns:
        dialogs.setdefault(turn[0].rsplit("_", 1)[0], []).append(turn)
    for dialog, items in dialogs.items():
        sess = release / f"Session{int(dialog[3:5])}"
        ev = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        tr = []
        for utt, label, start, end, text in items:
            ev += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{label}\t[2.5000, 2.5000, 2.5000]",
                   "C-E2:\tNeutral;\t()", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
            tr.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}")
            _wav(sess / "sentences" / "wav" / dialog / f"{utt}.wav", end - start)
        tr.append(f"M_1 [{items[0][2]:08.4f}-{items[0][3]:08.4f}]: overlap line to skip")
        (sess / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (sess / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(ev) + "\n")
        (sess / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
        (sess / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(tr) + "\n")
        _wav(sess / "dialog" / "wav" / f"{dialog}.wav", max(t[3] for t in items) + 0.5)
    return release


STANDARD = {"merge_excited": True, "classes": STANDARD_CLASSES}
TURNS = [
    ("Ses01F_impro01_F000", "neu", 0.5, 1.5, "Excuse me."),
    ("Ses01F_impro01_M000", "ang", 2.0, 3.25, "Do you have your forms?"),  # the speaker trap
    ("Ses01F_impro01_F001", "exc", 3.5, 4.0, "Yes!"),
    ("Ses01F_impro01_M001", "fru", 4.5, 5.0, "Again."),
    ("Ses01F_impro01_F002", "xxx", 5.5, 6.0, "Hm."),
    ("Ses01M_script01_2_M000", "sad", 0.2, 1.0, "I miss him."),
    ("Ses01M_script01_2_F000", "hap", 1.2, 2.0, "Come on."),
]


@pytest.fixture
def tree(tmp_path):
    return build_tree(tmp_path, TURNS)


def test_speaker_is_session_plus_letter_of_the_turn_not_of_the_dialogue(tree):
    df = prepare_iemocap(tree).set_index("utt_id")
    row = df.loc["Ses01F_impro01_M000"]
    assert (row.speaker, row.gender, row.session) == ("Ses01M", "M", "Ses01")
    assert df.loc["Ses01M_script01_2_F000"].speaker == "Ses01F"
    assert row.text == "Do you have your forms?"
    assert row.corpus == "iemocap"


def test_default_keeps_every_turn_with_its_own_label(tree):
    df = prepare_iemocap(tree).set_index("utt_id")
    assert len(df) == len(TURNS)
    assert df.loc["Ses01F_impro01_F001", "label"] == "exc"
    assert df.loc["Ses01F_impro01_M001", "label"] == "fru"
    assert df.loc["Ses01F_impro01_F002", "label"] == "xxx"


def test_excited_merged_into_happy_and_other_labels_dropped(tree):
    df = prepare_iemocap(tree, **STANDARD).set_index("utt_id")
    assert df.loc["Ses01F_impro01_F001", "label"] == "hap"
    assert "Ses01F_impro01_M001" not in df.index  # fru
    assert "Ses01F_impro01_F002" not in df.index  # xxx
    assert sorted(df.label.unique()) == ["ang", "hap", "neu", "sad"]


def test_merge_off_keeps_exc_apart(tree):
    df = prepare_iemocap(tree, merge_excited=False, classes=STANDARD_CLASSES).set_index("utt_id")
    assert "Ses01F_impro01_F001" not in df.index
    df = prepare_iemocap(tree, merge_excited=False, classes=("neu", "hap", "exc", "sad", "ang"))
    assert df.set_index("utt_id").loc["Ses01F_impro01_F001", "label"] == "exc"
    with pytest.raises(ConfigError, match="exc"):
        prepare_iemocap(tree, merge_excited=True, classes=("hap", "exc"))


def test_sentence_audio_has_header_duration_and_no_times(tree):
    df = prepare_iemocap(tree, audio_source="sentences").set_index("utt_id")
    row = df.loc["Ses01F_impro01_M000"]
    assert row.audio_path.endswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav")
    assert math.isnan(row.start) and math.isnan(row.end)
    assert row.duration == pytest.approx(1.25, abs=1e-3)


def test_dialog_audio_uses_evaluation_times(tree):
    df = prepare_iemocap(tree, audio_source="dialog").set_index("utt_id")
    row = df.loc["Ses01F_impro01_M000"]
    assert row.audio_path.endswith("Session1/dialog/wav/Ses01F_impro01.wav")
    assert (row.start, row.end) == (2.0, 3.25)
    assert row.duration == pytest.approx(1.25)


def test_mode_and_script_ids(tree):
    df = prepare_iemocap(tree).set_index("utt_id")
    # improvisations share no text across sessions, so they are no script (see script_id)
    assert tuple(df.loc["Ses01F_impro01_F000", ["mode", "script"]]) == ("improvised", "")
    assert tuple(df.loc["Ses01M_script01_2_M000", ["mode", "script"]]) == ("scripted", "script01_2")
    only = prepare_iemocap(tree, improvised_only=True)
    assert set(only["mode"]) == {"improvised"}


@pytest.mark.parametrize("dialog, expected", [
    ("Ses01F_script01_2", "script01_2"), ("Ses03M_script01_2b", "script01_2"),
    ("Ses05M_script01_1b", "script01_1"), ("Ses03M_impro05a", "impro05"), ("Ses01F_impro01", "impro01"),
])
def test_script_id_strips_part_letters(dialog, expected):
    assert script_id(dialog) == expected


def test_missing_sentence_wav_is_named(tree):
    wav = tree / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav"
    wav.unlink()
    with pytest.raises(CorpusError, match="Ses01F_impro01_M000.wav"):
        prepare_iemocap(tree)


def test_missing_dialog_wav_is_named(tree):
    (tree / "Session1/dialog/wav/Ses01M_script01_2.wav").unlink()
    with pytest.raises(CorpusError, match="Ses01M_script01_2.wav"):
        prepare_iemocap(tree, audio_source="dialog")


def test_missing_transcription_is_named(tree):
    (tree / "Session1/dialog/transcriptions/Ses01F_impro01.txt").unlink()
    with pytest.raises(CorpusError, match="transcriptions/Ses01F_impro01.txt"):
        prepare_iemocap(tree)


@pytest.mark.parametrize("counts", [True, False])
def test_missing_label_file_of_a_dialogue_is_named_even_with_counts_off(tree, counts):
    (tree / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").unlink()
    with pytest.raises(CorpusError, match="(?s)label file missing for 1 dialogue.*EmoEvaluation/Ses01F_impro01.txt"):
        prepare_iemocap(tree, check_standard_counts=counts)


def test_hidden_files_and_annotator_subfolders_are_ignored(tree):
    ev = tree / "Session1/dialog/EmoEvaluation"
    (ev / "._Ses01F_impro01.txt").write_text("[1.0000 - 2.0000]\tSes01F_impro01_F777\tneu\t[1, 1, 1]\n")
    (ev / "Categorical").mkdir()
    (ev / "Categorical" / "Ses01F_impro01_e2_cat.txt").write_text("[0.1 - 0.2]\tSes01F_impro01_F999\tneu\t[1, 1, 1]\n")
    assert len(prepare_iemocap(tree, **STANDARD)) == 5


def test_standard_set_with_wrong_counts_fails_with_expected_numbers(tmp_path):
    turns = [(f"Ses0{s}F_impro01_F000", "neu", 0.5, 1.0, "Hello.") for s in range(1, 6)]
    release = build_tree(tmp_path, turns)
    with pytest.raises(CorpusError, match=r"expected 5531 utterances \(Ses01 1085.*found 5"):
        prepare_iemocap(release)
    assert len(prepare_iemocap(release, check_standard_counts=False)) == 5
    assert len(prepare_iemocap(release, improvised_only=True)) == 5  # not the standard set


def test_standard_counts_pass_when_they_match(tmp_path, monkeypatch):
    turns = [(f"Ses0{s}F_impro01_F000", "neu", 0.5, 1.0, "Hello.") for s in range(1, 6)]
    release = build_tree(tmp_path, turns)
    monkeypatch.setattr(iemocap, "STANDARD_COUNTS", {f"Ses0{s}": 1 for s in range(1, 6)})
    assert len(prepare_iemocap(release)) == 5


def test_counts_not_checked_when_sessions_are_missing(tree):
    assert len(prepare_iemocap(tree, check_standard_counts=True)) == len(TURNS)


def test_parent_folder_is_accepted(tree):
    assert len(prepare_iemocap(tree.parent)) == len(TURNS)


def test_unknown_label_names_file_and_line(tree):
    ev = tree / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    ev.write_text(ev.read_text().replace("\tang\t", "\tangry\t"))
    with pytest.raises(CorpusError, match=r"Ses01F_impro01.txt:\d+: unknown label 'angry'"):
        prepare_iemocap(tree)


def test_bad_options_are_config_errors(tree):
    with pytest.raises(ConfigError, match="audio_source"):
        prepare_iemocap(tree, audio_source="segments")
    with pytest.raises(ConfigError, match="classes"):
        prepare_iemocap(tree, classes=("happy",))


def test_not_a_corpus_folder(tmp_path):
    with pytest.raises(CorpusError, match="Session"):
        prepare_iemocap(tmp_path)


def test_registry_dispatches_and_rejects_bad_options(tree):
    assert {"iemocap", "csv"} <= set(registry("loader"))
    assert len(prepare_corpus("iemocap", root=tree)) == len(TURNS)
    df = prepare_corpus("iemocap", str(tree), corpus="iemocap_dev", audio_source="dialog")
    assert set(df.corpus) == {"iemocap_dev"} and len(df) == len(TURNS)
    with pytest.raises(ConfigError, match="multiple values"):
        prepare_corpus("iemocap", tree, root=tree)
    with pytest.raises(ConfigError, match="unknown"):
        prepare_corpus("msp-podcast", root=tree)
    with pytest.raises(ConfigError, match="merge_exited"):
        prepare_corpus("iemocap", root=tree, merge_exited=False)

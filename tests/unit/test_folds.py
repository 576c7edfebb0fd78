import json

import pandas as pd
import pytest

from ser_pipeline.errors import ConfigError, LeakageError
from ser_pipeline.protocols.folds import (check_leakage, make_folds, read_fold_file, subsample_per_class,
                                          write_fold_file)


def _manifest(n_per=3):
    rows = []
    for s in range(1, 4):
        for g in "FM":
            for lab in ("neu", "hap", "sad", "ang"):
                for k in range(n_per):
                    mode = "improvised" if k % 2 else "scripted"
                    rows.append({"utt_id": f"Ses0{s}{g}_{lab}{k}", "speaker": f"Ses0{s}{g}", "session": f"Ses0{s}",
                                 "label": lab, "mode": mode, "script": "script01" if mode == "scripted" else f"impro{s}"})
    return pd.DataFrame(rows)


def test_leave_one_session_out_holds_out_each_session_once():
    df = _manifest()
    folds = make_folds(df, {"scheme": "leave_one_session_out"})
    assert [f["test_session"] for f in folds] == ["Ses01", "Ses02", "Ses03"]
    for f in folds:
        assert f["val"] == []
        assert {u[:5] for u in f["test"]} == {f["test_session"]}
        assert f["test_session"] not in {u[:5] for u in f["train"]}
        assert len(f["train"]) + len(f["test"]) == len(df)
    check_leakage(folds, df)


def test_leave_one_speaker_out_swaps_validation_and_test_speaker():
    df = _manifest()
    folds = make_folds(df, {"scheme": "leave_one_speaker_out"})
    assert len(folds) == 6
    assert [(f["test_speaker"], f["val_speaker"]) for f in folds[:2]] == [("Ses01F", "Ses01M"), ("Ses01M", "Ses01F")]
    check_leakage(folds, df)


def test_leaky_fold_is_rejected():
    df = _manifest()
    folds = make_folds(df, {"scheme": "leave_one_session_out"})
    folds[0]["train"].append(folds[0]["test"][0].replace("Ses01F_neu0", "Ses01F_hap1"))
    with pytest.raises(LeakageError, match="Ses01F"):
        check_leakage(folds, df)


def test_shared_speaker_between_validation_and_test_is_rejected():
    df = _manifest()
    folds = make_folds(df, {"scheme": "leave_one_speaker_out"})
    folds[0]["val"].append(folds[0]["test"].pop())
    with pytest.raises(LeakageError, match="val and test"):
        check_leakage(folds, df)


def test_script_disjoint_removes_test_scripts_from_training():
    df = _manifest()
    plain = make_folds(df, {"scheme": "leave_one_session_out"})
    disjoint = make_folds(df, {"scheme": "leave_one_session_out", "script_disjoint": True})
    scripts = dict(zip(df.utt_id, df.script))
    assert "script01" in {scripts[u] for u in plain[0]["train"]}
    assert "script01" not in {scripts[u] for u in disjoint[0]["train"]}
    check_leakage(disjoint, df, script_disjoint=True)
    with pytest.raises(LeakageError, match="scripts"):
        check_leakage(plain, df, script_disjoint=True)


def test_filter_keeps_only_matching_rows_and_bad_column_is_named():
    df = _manifest()
    folds = make_folds(df, {"scheme": "leave_one_session_out", "filter": {"mode": "improvised"}})
    modes = dict(zip(df.utt_id, df["mode"]))
    assert {modes[u] for f in folds for u in f["train"] + f["test"]} == {"improvised"}
    with pytest.raises(ConfigError, match="nosuch"):
        make_folds(df, {"scheme": "leave_one_session_out", "filter": {"nosuch": 1}})


LABELS = {"classes": ["neu", "hap", "sad", "ang"]}


def test_fold_file_round_trip_records_protocol(tmp_path):
    df = _manifest()
    doc = write_fold_file(df, {"scheme": "leave_one_session_out", "labels": LABELS}, tmp_path / "f.json", "c", "loso")
    back = read_fold_file(tmp_path / "f.json")
    assert back == json.loads(json.dumps(doc))
    assert "held-out session" in back["description"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_subsample_exact_counts_training_only_and_seeded():
    df = _manifest(n_per=10)
    fold = make_folds(df, {"scheme": "leave_one_session_out"})[0]
    labels = dict(zip(df.utt_id, df.label))
    train_labels = [labels[u] for u in fold["train"]]
    a = subsample_per_class(fold["train"], train_labels, 5, seed=1)
    b = subsample_per_class(fold["train"], train_labels, 5, seed=1)
    c = subsample_per_class(fold["train"], train_labels, 5, seed=2)
    assert a == b and a != c
    assert pd.Series([labels[u] for u in a]).value_counts().to_dict() == {k: 5 for k in ("neu", "hap", "sad", "ang")}
    assert set(a) <= set(fold["train"])
    bigger = subsample_per_class(fold["train"], train_labels, 8, seed=1)
    assert set(a) <= set(bigger), "sizes of one seed are nested"
    assert subsample_per_class(fold["train"], train_labels, "full", seed=1) == sorted(fold["train"])
    capped = subsample_per_class(fold["train"], train_labels, 10_000, seed=1)
    assert sorted(capped) == sorted(fold["train"])


def test_leave_one_speaker_out_without_swap_tests_the_second_speaker_only():
    df = _manifest()
    folds = make_folds(df, {"scheme": "leave_one_speaker_out", "swap_validation": False})
    assert [(f["test_speaker"], f["val_speaker"]) for f in folds] == [
        ("Ses01M", "Ses01F"), ("Ses02M", "Ses02F"), ("Ses03M", "Ses03F")]
    check_leakage(folds, df)


def test_unexpected_fold_count_is_refused_before_anything_is_written(tmp_path):
    from ser_pipeline.errors import CorpusError

    with pytest.raises(CorpusError, match="expects 5"):
        write_fold_file(_manifest(), {"scheme": "leave_one_session_out", "labels": LABELS}, tmp_path / "f.json",
                        "c", "loso", expected_folds=5)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- IEMOCAP's real dialogue list

def _iemocap_dialogues():
    """Every session performs script01-03 (in parts) and impro01-08, led by either speaker."""
    from ser_pipeline.corpora.iemocap import script_id

    rows = []
    scripts = ["script01_1", "script01_2", "script01_3", "script02_1", "script02_2", "script03_1", "script03_2"]
    for s in range(1, 6):
        for lead in "FM":
            for name in [f"impro0{i}" for i in range(1, 9)] + scripts:
                dialog = f"Ses0{s}{lead}_{name}"
                mode = "improvised" if "impro" in name else "scripted"
                for k, lab in enumerate(("neu", "hap", "sad", "ang")):
                    for spk in "FM":
                        rows.append({"utt_id": f"{dialog}_{spk}{k:03d}", "speaker": f"Ses0{s}{spk}",
                                     "session": f"Ses0{s}", "label": lab, "mode": mode,
                                     "script": script_id(dialog) if mode == "scripted" else ""})
    return pd.DataFrame(rows)


def test_script_disjoint_folds_on_the_real_iemocap_dialogue_list_keep_improvised_training_data(tmp_path):
    df = _iemocap_dialogues()
    doc = write_fold_file(df, {"scheme": "leave_one_session_out", "script_disjoint": True, "labels": LABELS},
                          tmp_path / "f.json", "iemocap", "sd")
    modes = dict(zip(df.utt_id, df["mode"]))
    for f in doc["folds"]:
        assert len(f["train"]) == 4 * 8 * 2 * 4 * 2, f["name"]  # every improvised turn of 4 sessions
        assert {modes[u] for u in f["train"]} == {"improvised"}, "every script recurs in the test session"
        assert all(n > 0 for n in f["class_counts"]["train"].values())


def test_an_empty_training_part_is_an_error_at_fold_time(tmp_path):
    from ser_pipeline.errors import CorpusError

    df = _iemocap_dialogues()
    df = df[df["mode"] == "scripted"]
    with pytest.raises(CorpusError, match="empty train part"):
        write_fold_file(df, {"scheme": "leave_one_session_out", "script_disjoint": True, "labels": LABELS},
                        tmp_path / "f.json", "iemocap", "sd")
    assert not (tmp_path / "f.json").exists()


# ---------------------------------------------------------------- labels

def test_labels_merge_and_drop_are_reported_and_a_missing_class_is_an_error(tmp_path):
    from ser_pipeline.errors import CorpusError

    df = _manifest()
    df.loc[df.utt_id.str.contains("_hap0"), "label"] = "exc"
    doc = write_fold_file(df, {"scheme": "leave_one_session_out",
                               "labels": {"classes": ["neu", "hap", "sad", "ang"], "merge": {"exc": "hap"}}},
                          tmp_path / "f.json", "c", "p")
    assert doc["label_report"]["exc"] == {"n": 6, "kept_as": "hap"}
    assert doc["folds"][0]["class_counts"]["train"]["hap"] == 12
    with pytest.raises(CorpusError, match=r"classes \['angry'\] have no utterance"):
        write_fold_file(df, {"scheme": "leave_one_session_out", "labels": {"classes": ["neu", "hap", "sad", "angry"]}},
                        tmp_path / "g.json", "c", "p")


def test_a_mapping_that_drops_most_rows_stops_with_the_numbers(tmp_path):
    from ser_pipeline.errors import CorpusError

    df = _manifest()
    df["label"] = df["label"].map({"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry"})
    with pytest.raises(CorpusError, match=r"drops 36 of 72 utterances \(50% > 40%\)"):
        write_fold_file(df, {"scheme": "leave_one_session_out",
                             "labels": {"classes": ["sad", "neutral"], "max_dropped_share": 0.4}},
                        tmp_path / "f.json", "c", "p")


def test_a_class_missing_from_a_test_part_is_an_error(tmp_path):
    from ser_pipeline.errors import CorpusError

    df = _manifest()
    df = df[~((df.session == "Ses02") & (df.label == "ang"))]
    with pytest.raises(CorpusError, match=r"fold f02 has no test utterance of classes \['ang'\]"):
        write_fold_file(df, {"scheme": "leave_one_session_out", "labels": LABELS}, tmp_path / "f.json", "c", "p")


# ---------------------------------------------------------------- schemes for any corpus

def test_leave_one_group_out_over_speakers_with_next_group_validation():
    df = _manifest()
    folds = make_folds(df, {"scheme": "leave_one_group_out", "group": "speaker", "validation": "next_group"})
    assert len(folds) == 6
    assert folds[0]["test_speaker"] == "Ses01F" and folds[0]["val_group"] == "Ses01M"
    check_leakage(folds, df)


def test_group_kfold_deals_every_speaker_to_one_test_fold():
    df = _manifest()
    folds = make_folds(df, {"scheme": "group_kfold", "group": "speaker", "k": 3, "seed": 1})
    tested = [u for f in folds for u in f["test"]]
    assert sorted(tested) == sorted(df.utt_id) and len(folds) == 3
    check_leakage(folds, df)


def test_predefined_split_with_validation_speakers_taken_out_of_training():
    df = _manifest()
    df["split"] = df.session.map({"Ses01": "train", "Ses02": "train", "Ses03": "test"})
    folds = make_folds(df, {"scheme": "predefined", "train": ["train"], "test": ["test"], "val_speakers": ["Ses02F"]})
    spk = dict(zip(df.utt_id, df.speaker))
    assert {spk[u] for u in folds[0]["val"]} == {"Ses02F"}
    assert "Ses02F" not in {spk[u] for u in folds[0]["train"]}
    check_leakage(folds, df)


def test_a_scheme_the_corpus_cannot_use_says_which_fits():
    df = _manifest()
    with pytest.raises(ConfigError, match="column 'split'.*leave_one_group_out"):
        make_folds(df, {"scheme": "predefined", "train": ["train"], "test": ["test"]})
    df = _manifest()
    df.loc[df.session == "Ses01", "speaker"] = "Ses01X"  # one speaker in the session
    with pytest.raises(ConfigError, match="exactly 2 speakers.*leave_one_group_out"):
        make_folds(df, {"scheme": "leave_one_speaker_out"})

"""Tables put the paper's number beside ours, state what was measured, and say which differences are real.

Result dicts are built here in the current result-file format (per-utterance predictions,
class counts, labels, options_text, convergence, ...), with metrics computed from the
predictions by the metrics module, so every number in a table can be checked by hand.
"""
import json

import numpy as np
import pytest

from ser_pipeline.errors import ConfigError
from ser_pipeline.reporting.plots import confusion_markdown, scaling_plot, speaker_plot
from ser_pipeline.reporting.stats import IncompleteResultsError
from ser_pipeline.reporting.tables import build_table, write_table
from ser_pipeline.training.metrics import DEFINITIONS, scores

CLASSES = ["neu", "hap", "sad", "ang"]
PER_CLASS = 10  # test utterances per class and speaker


def _preds(correct_per_class: list[int], speaker: str, fold: str, n=PER_CLASS, part="test"):
    """Utterances of one speaker: the first correct_per_class[c] of class c are right, the rest predicted c+1."""
    utt, y_true, y_pred = [], [], []
    for c, k in enumerate(correct_per_class):
        for i in range(n):
            utt.append(f"{fold}_{part}_{speaker}_{c}_{i}")
            y_true.append(c)
            y_pred.append(c if i < k else (c + 1) % len(CLASSES))
    return {"utt_id": utt, "speaker": [speaker] * len(utt), "y_true": y_true, "y_pred": y_pred,
            "probs": [[0.25] * 4 for _ in utt]}


def _join(*parts):
    return {k: sum((p[k] for p in parts), []) for k in parts[0]}


def make_run(model, fold, seed, test_correct, size="full", val_correct=None, still_falling=False,
             options="optimizer adam, lr 0.001, batch 16, 30 epochs", extra=None, speakers=None):
    """test_correct: per speaker, correct predictions per class (out of PER_CLASS)."""
    speakers = speakers or [f"{fold}_S{i}" for i in range(len(test_correct))]
    test = _join(*[_preds(c, s, fold) for c, s in zip(test_correct, speakers)])
    run = {
        "model": model, "arch": model, "kind": "neural", "corpus": "demo", "protocol": "loso_speaker",
        "protocol_description": "train on the other sessions; one speaker of the held-out session validates, "
                                "the other tests",
        "fold": fold, "test_session": f"Ses{fold[-1]}", "test_speaker": speakers[0] if len(speakers) == 1 else None,
        "val_speaker": f"{fold}_V" if val_correct else None, "size_per_class": size, "seed": seed,
        "labels": {"column": "label", "merge": {"exc": "hap"}, "classes": CLASSES},
        "class_counts": {"train": {c: 40 for c in CLASSES},
                         "val": {c: PER_CLASS for c in CLASSES} if val_correct else None,
                         "test": {c: PER_CLASS * len(speakers) for c in CLASSES}},
        "n_train_per_class": {c: 40 for c in CLASSES},
        "metrics": scores(test["y_true"], test["y_pred"], CLASSES),
        "val_metrics": None, "predictions": {"test": test},
        "metric_definitions": DEFINITIONS, "selected_epoch": 29,
        "epoch_selection": "fixed number of epochs, no early stopping",
        "convergence": {"rule": "still falling if the last 5 epochs lowered the training loss by more than 1%",
                        "final_relative_drop": 0.05 if still_falling else 0.001, "tolerance": 0.01,
                        "still_falling": still_falling},
        "training": {"optimizer": "adam", "lr": 0.001}, "options_text": options,
        "features": {"audio": {"extractor": "wav2vec1", "info": {"random_init": False}}},
    }
    if val_correct:
        val = _preds(val_correct, f"{fold}_V", fold, part="val")
        run["predictions"]["val"] = val
        run["val_metrics"] = scores(val["y_true"], val["y_pred"], CLASSES)
    run.update(extra or {})
    return run


FOLDS = [f"f0{k}" for k in range(1, 9)]


def _system(model, correct, seeds=(0,), **kw):
    """One single-speaker fold per entry of correct (a per-class list per fold)."""
    return [make_run(model, f, s, [c], **kw) for s in seeds for f, c in zip(FOLDS, correct)]


BASE = [[6, 5, 7, 6], [5, 5, 6, 7], [7, 6, 5, 5], [6, 6, 6, 6], [5, 7, 6, 5], [6, 5, 5, 7], [7, 7, 6, 5], [5, 6, 7, 6]]
BETTER = [[c + 2 for c in f] for f in BASE]  # +20 points of recall on every class of every fold

EXP = {"title": "T1", "sizes": ["full"], "seeds": [0], "metrics": ["UA", "WA"], "paper": "boigne2020_table1",
       "models": {"mean_pool_w2v": "Mean pooling, wav2vec", "mlp_pool_w2v": "MLP with pooling, wav2vec",
                  "attention_pool_w2v": "Attention pooling, wav2vec"}}


def _three_systems(**kw):
    return (_system("mean_pool_w2v", BASE, **kw) + _system("mlp_pool_w2v", BETTER, **kw)
            + _system("attention_pool_w2v", BASE, **kw))


def test_table_states_what_was_measured_and_puts_the_paper_beside_ours():
    md, df = build_table("t1", EXP, _three_systems())
    for text in ("**Corpus**: demo", "(8 folds)", "f01: test f01_S0", "**Validation split**: none",
                 "**Epoch selection** (all systems): fixed number of epochs",
                 "**Labels**: column `label`, classes neu, hap, sad, ang; merged: exc → hap",
                 "test parts summed over the 8 folds: neu 80, hap 80, sad 80, ang 80",
                 "training part per fold at size full (mean over runs): neu 40",
                 "**Training options** (all systems): optimizer adam, lr 0.001",
                 "UA = unweighted accuracy", "WA = weighted accuracy", "t-interval over the per-run values",
                 "percentile bootstrap over test utterances", "Holm-corrected", "scipy.stats.wilcoxon",
                 "**Paper**: Boigne"):
        assert text in md, text
    base = df[df.model == "mean_pool_w2v"].iloc[0]
    ua = np.array([np.mean(np.array(c) / PER_CLASS) for c in BASE]) * 100
    assert base["UA_mean"] == pytest.approx(ua.mean(), abs=1e-3)
    assert base["UA_t_lo"] < base["UA_mean"] < base["UA_t_hi"]
    assert base["UA_boot_lo"] < base["UA_mean"] < base["UA_boot_hi"]
    assert base["UA_paper"] == 54.9
    assert f"| mean_pool_w2v (ref) | Mean pooling, wav2vec | full (40) | {base['UA_mean']:.1f} " \
           f"[{base['UA_t_lo']:.1f}, {base['UA_t_hi']:.1f}] | 54.9 |" in md
    assert "Other rows of the paper's table" in md and "MLP with pooling, LLD" in md


def test_a_clearly_better_system_is_marked_and_an_identical_one_is_not():
    md, df = build_table("t1", EXP, _three_systems())
    better = df[df.model == "mlp_pool_w2v"].iloc[0]
    same = df[df.model == "attention_pool_w2v"].iloc[0]
    assert better["UA_vs_ref_diff"] == pytest.approx(20.0)
    assert better["UA_vs_ref_t_p"] == 0.0  # +20 points on every pair: a constant shift
    assert better["UA_vs_ref_w_p_holm"] == pytest.approx(min(1.0, 4 * 2 / 2 ** 8))  # m = 4 Wilcoxon tests
    assert better["UA_vs_ref_pairs"] == 8
    assert same["UA_vs_ref_t_p"] == 1.0 and same["UA_vs_ref_w_p"] == 1.0
    row = next(line for line in md.splitlines() if line.startswith("| mlp_pool_w2v | full | UA |"))
    assert "+20.0" in row and row.count("*") == 2 and "| 8 |" in row and "8 / 0 of 8" in row
    row = next(line for line in md.splitlines() if line.startswith("| attention_pool_w2v | full | UA |"))
    assert "*" not in row and "1.00 (1.00)" in row
    assert "identical on every pair" in md
    assert "(t-test m = 4, Wilcoxon m = 4)" in md


def test_per_speaker_scores_show_a_system_that_wins_on_average_but_loses_on_most_speakers():
    # fold f01: a big win (+42.5 points); the other 7 folds: one fewer correct neu utterance
    # (-2.5 points each) -> a higher mean, but worse on 7 of 8 speakers
    spiky = [[10, 10, 10, 10]] + [[f[0] - 1, *f[1:]] for f in BASE[1:]]
    runs = _system("mean_pool_w2v", BASE) + _system("mlp_pool_w2v", spiky)
    exp = {**EXP, "models": {"mean_pool_w2v": "Mean pooling, wav2vec", "mlp_pool_w2v": "MLP with pooling, wav2vec"}}
    md, df = build_table("t1", exp, runs)
    row = df[df.model == "mlp_pool_w2v"].iloc[0]
    assert row["UA_mean"] > df[df.model == "mean_pool_w2v"].iloc[0]["UA_mean"]
    assert (row["speakers_better_than_ref"], row["speakers_worse_than_ref"]) == (1, 7)
    assert row["UA_speaker_f01_S0"] == pytest.approx(100.0)
    assert "1 / 7 of 8" in md


def test_unpaired_runs_are_an_error_naming_the_run():
    runs = _three_systems()
    runs = [r for r in runs if not (r["model"] == "mlp_pool_w2v" and r["fold"] == "f03")]
    with pytest.raises(IncompleteResultsError, match="f03.*no counterpart run of 'mlp_pool_w2v'"):
        build_table("t1", EXP, runs)


def test_a_training_size_missing_for_one_system_is_an_error():
    exp = {**EXP, "sizes": [24, "full"]}
    runs = _three_systems() + _system("mean_pool_w2v", BASE, size=24) + _system("attention_pool_w2v", BASE, size=24)
    with pytest.raises(IncompleteResultsError, match="no counterpart run of 'mlp_pool_w2v'"):
        build_table("t1", exp, runs)


def test_systems_scored_on_different_test_utterances_cannot_be_compared():
    runs = _three_systems()
    other = next(r for r in runs if r["model"] == "mlp_pool_w2v" and r["fold"] == "f02")
    other["predictions"]["test"]["utt_id"][0] = "someone_else"
    with pytest.raises(IncompleteResultsError, match="fold f02: .* scored other test utterances"):
        build_table("t1", EXP, runs)


def test_a_result_file_without_predictions_names_the_file(tmp_path):
    runs = _three_systems()
    del runs[0]["predictions"]
    paths = []
    for i, r in enumerate(runs):
        p = tmp_path / f"run{i}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    with pytest.raises(IncompleteResultsError, match=r"run0\.json: no 'predictions.test'"):
        write_table("t1", EXP, paths, str(tmp_path / "t.md"), str(tmp_path / "t.csv"))
    assert not (tmp_path / "t.md").exists() and not (tmp_path / "t.csv").exists()


def test_write_table_writes_markdown_and_csv(tmp_path):
    paths = []
    for i, r in enumerate(_three_systems()):
        p = tmp_path / f"run{i}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    md = write_table("t1", EXP, paths, str(tmp_path / "t.md"), str(tmp_path / "t.csv"))
    assert (tmp_path / "t.md").read_text() == md
    header = (tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    for col in ("UA_t_lo", "UA_boot_hi", "UA_vs_ref_t_p_holm", "UA_vs_ref_w_p", "UA_speaker_f01_S0",
                "still_falling_runs", "speakers_better_than_ref"):
        assert col in header, col
    assert not any(c.startswith("_") for c in header)


def test_still_falling_runs_are_flagged_with_the_rule_under_the_table():
    runs = _system("mean_pool_w2v", BASE) + _system("mlp_pool_w2v", BETTER[:1], still_falling=True) \
        + _system("mlp_pool_w2v", BETTER)[1:] + _system("attention_pool_w2v", BASE)
    md, df = build_table("t1", EXP, runs)
    assert "| mlp_pool_w2v † |" in md and "| mean_pool_w2v (ref) |" in md
    assert "† Training had not converged" in md
    assert "rule: still falling if the last 5 epochs lowered the training loss by more than 1%" in md
    assert "mlp_pool_w2v (full): 1 of 8" in md


def test_options_are_listed_per_system_when_they_differ():
    runs = _system("mean_pool_w2v", BASE) + _system("mlp_pool_w2v", BETTER, options="sgd, lr 0.01") \
        + _system("attention_pool_w2v", BASE)
    md, _ = build_table("t1", EXP, runs)
    assert "- **Training options**:\n  - `mean_pool_w2v`: optimizer adam" in md
    assert "  - `mlp_pool_w2v`: sgd, lr 0.01" in md


def test_reference_key_and_bootstrap_ci_choice():
    exp = {**EXP, "reference": "mlp_pool_w2v", "ci": "bootstrap"}
    md, df = build_table("t1", exp, _three_systems())
    assert "| mlp_pool_w2v (ref) |" in md and "Against the reference `mlp_pool_w2v`" in md
    base = df[df.model == "mean_pool_w2v"].iloc[0]
    assert f"{base['UA_mean']:.1f} [{base['UA_boot_lo']:.1f}, {base['UA_boot_hi']:.1f}]" in md
    assert base["UA_vs_ref_diff"] == pytest.approx(-20.0)
    with pytest.raises(ConfigError, match="reference"):
        build_table("t1", {**EXP, "reference": "nope"}, _three_systems())
    with pytest.raises(ConfigError, match="ci"):
        build_table("t1", {**EXP, "ci": "jackknife"}, _three_systems())
    with pytest.raises(ConfigError, match="kind"):
        build_table("t1", {**EXP, "kind": "pie"}, _three_systems())


def test_different_label_sets_cannot_share_a_table():
    runs = _three_systems()
    runs[3]["labels"] = {**runs[3]["labels"], "merge": {}}
    with pytest.raises(IncompleteResultsError, match="one table needs one label set"):
        build_table("t1", EXP, runs)


def test_random_init_features_are_flagged():
    runs = _three_systems()
    runs[0]["features"]["audio"]["info"] = {"random_init": True, "model_checksum": "random-init:seed=0"}
    md, _ = build_table("t1", EXP, runs)
    assert "RANDOMLY INITIALISED" in md


# ---------------------------------------------------------------- val_test (Li et al. Table 2)

LI_EXP = {"kind": "val_test", "title": "Li T2", "sizes": ["full"], "seeds": [0], "metrics": ["WA", "UA"],
          "paper": "li2020_table2", "models": {"ec_only": "EC only model", "menan": "Proposed MEnAN"}}


def test_val_test_table_shows_delta_beside_the_paper():
    val = [7, 7, 7, 7]
    runs = [make_run("ec_only", f, 0, [c], val_correct=val) for f, c in zip(FOLDS, BASE)] \
        + [make_run("menan", f, 0, [c], val_correct=val) for f, c in zip(FOLDS, BETTER)]
    md, df = build_table("li", LI_EXP, runs)
    ec = df[df.model == "ec_only"].iloc[0]
    test_ua = np.mean([np.mean(np.array(c) / PER_CLASS) for c in BASE]) * 100
    assert ec["UA_val"] == pytest.approx(70.0) and ec["UA_test"] == pytest.approx(test_ua, abs=1e-3)
    assert ec["UA_delta"] == pytest.approx(test_ua - 70.0, abs=1e-3)
    assert ec["WA_delta_paper"] == -2.56 and ec["UA_test_paper"] == 57.45
    assert "**Validation split**: the held-out validation speaker(s) of each fold" in md and "validation f01_V" in md
    row = next(line for line in md.splitlines() if line.startswith("| ec_only (ref) |"))
    assert f"| {ec['WA_val']:.1f} |" in row and "| 58.5 | 55.92 | -2.56 |" in row
    assert "Other rows of the paper's table" in md and "DAT model" in md


def test_val_test_needs_validation_scores():
    runs = _system("ec_only", BASE) + _system("menan", BETTER)
    with pytest.raises(IncompleteResultsError, match="val_metrics is null"):
        build_table("li", LI_EXP, runs)


# ---------------------------------------------------------------- cross_corpus (Li et al. Table 3)

def _cross(model, fold, acc):
    return {"model": model, "fold": fold, "train_corpus": "iemocap", "train_protocol": "loso_speaker",
            "eval_corpus": "mosei", "rule": {"name": "positive_rating",
                                             "description": "correct when the predicted emotion's rating is positive"},
            "n": 200, "metrics": {"accuracy": acc}, "class_counts": {"neu": 50, "hap": 90, "sad": 40, "ang": 20}}


def test_cross_corpus_table_gives_mean_min_max_beside_the_paper():
    exp = {"kind": "cross_corpus", "title": "Li T3", "paper": "li2020_table3",
           "models": {"ec_only": "EC only model", "menan": "Proposed MEnAN"}}
    ec = [0.30, 0.28, 0.33, 0.31, 0.29, 0.32]
    files = [_cross("ec_only", f, a) for f, a in zip(FOLDS, ec)] \
        + [_cross("menan", f, a + 0.02) for f, a in zip(FOLDS, ec)]
    md, df = build_table("li3", exp, files)
    row = df[df.model == "ec_only"].iloc[0]
    assert (row["mean"], row["min"], row["max"]) == pytest.approx((np.mean(ec) * 100, 28.0, 33.0))
    assert (row["mean_paper"], row["min_paper"], row["max_paper"]) == (31.35, 27.14, 34.96)
    assert "**Evaluated on**: mosei" in md and "`positive_rating`" in md and "hap 90" in md
    m = df[df.model == "menan"].iloc[0]
    assert m["accuracy_vs_ref_diff"] == pytest.approx(2.0) and m["accuracy_vs_ref_pairs"] == 6
    assert "DAT model" in md  # the paper row without a run of ours
    with pytest.raises(IncompleteResultsError, match="unpaired folds"):
        build_table("li3", exp, files[:-1])


# ---------------------------------------------------------------- reference_sweep (Triantafyllopoulos et al. Table 4)

def _sweep_run(model, fold, base_ua, deltas):
    r = make_run(model, fold, 0, [[6, 6, 6, 6]])
    r["metrics_by_reference"] = [{"index": k, "test_reference": {"S": f"utt{k}"}, "UA": base_ua + d, "WA": base_ua + d}
                                 for k, d in enumerate(deltas)]
    return r


def test_reference_sweep_gives_mean_std_over_references_and_a_paired_t_test():
    exp = {"kind": "reference_sweep", "title": "T4", "sizes": ["full"], "seeds": [0], "metrics": ["UA"],
           "paper": "triantafyllopoulos2021_table4", "reference": "two_channel",
           "paper_columns": {"UA_mean": "UA_5class_mean", "UA_std": "UA_5class_std"},
           "models": {"two_channel": "TwoChannel", "eresnet": "eResNet", "resnet": None}}
    deltas = [0.0, 0.01, -0.01, 0.02]
    runs = [_sweep_run("two_channel", f, 0.30, deltas) for f in FOLDS[:3]] \
        + [_sweep_run("eresnet", f, 0.40, [d + 0.001 * k for k, d in enumerate(deltas)]) for f in FOLDS[:3]] \
        + [make_run("resnet", f, 0, [[6, 6, 6, 6]]) for f in FOLDS[:3]]
    md, df = build_table("t4", exp, runs)
    tc = df[df.model == "two_channel"].iloc[0]
    assert tc["UA_sweep_mean"] == pytest.approx(30.5) and tc["UA_sweep_refs"] == 4
    assert tc["UA_sweep_std"] == pytest.approx(np.std([30, 31, 29, 32], ddof=1))
    assert tc["UA_sweep_mean_paper"] == 32.4 and tc["UA_sweep_std_paper"] == 0.7
    e = df[df.model == "eresnet"].iloc[0]
    assert e["UA_sweep_vs_ref_pairs"] == 12 and e["UA_sweep_vs_ref_t_p"] < 1e-10
    assert "| 32.4 (0.7) |" in md and "no reference input" in md
    assert "### Reference sweep: against `two_channel`" in md and "not independent" in md
    broken = [r for r in runs if not (r["model"] == "eresnet" and r["fold"] == "f02")]
    broken.append(_sweep_run("eresnet", "f02", 0.40, deltas[:3]))
    with pytest.raises(IncompleteResultsError, match=r"only in two_channel: \[\('f02', 0, 3\)\]"):
        build_table("t4", exp, broken)


# ---------------------------------------------------------------- plots and confusion

def test_paper_confusion_is_shown_in_our_class_order():
    exp = {"paper": "ma2018_table1", "models": {"ma_variable": "Variable-Length"}}
    md = confusion_markdown(exp, [make_run("ma_variable", "f01", 0, [[6, 6, 6, 6]])])
    paper_part = md.split("paper (")[1]
    # Ma et al. order neu, ang, hap, sad; ours neu, hap, sad, ang: the sad row ends with 0.
    assert "| sad | 15.89 | 0.48 | 83.64 | 0 |" in paper_part


def test_scaling_plot_writes_png_and_svg(tmp_path):
    exp = {"title": "F2", "metrics": ["UA"], "paper": "boigne2020_fig2",
           "models": {"mlp_pool_w2v": "MLP with pooling, wav2vec"}}
    runs = [make_run("mlp_pool_w2v", "f01", 0, [[3 + i, 4, 5, 6]], size=s) for i, s in enumerate([12, 24, "full"])]
    scaling_plot("f2", exp, runs, str(tmp_path / "a.png"), str(tmp_path / "a.svg"))
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "a.svg").read_bytes()[:500]


def test_speaker_plot_writes_png_and_svg(tmp_path):
    speaker_plot("t1", EXP, _three_systems(), str(tmp_path / "s.png"), str(tmp_path / "s.svg"))
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    svg = (tmp_path / "s.svg").read_text()
    assert "better on 8/8" in svg and "(reference)" in svg


def test_convergence_rules_that_differ_only_in_their_window_read_as_one():
    runs = _system("mean_pool_w2v", BASE) + _system("attention_pool_w2v", BASE)
    for k, r in zip((2, 5, 9), runs[:3]):
        r["convergence"] = {"rule": f"mean training loss of the last {k} epochs vs the {k} before: flagged if it "
                                    f"fell by more than 1%", "still_falling": True}
        r["training"] = {**r["training"], "epochs_from": "inner_val"}
    runs += _system("mlp_pool_w2v", BETTER)
    md, _ = build_table("t1", EXP, runs)
    legend = next(line for line in md.splitlines() if line.startswith("† Training"))
    assert "last k epochs vs the k before" in legend and "k = 2–9" in legend
    assert "last 5 epochs" not in legend
    assert "still be falling by design" in legend
    assert "mean_pool_w2v (full): 3 of 8" in legend


def test_a_row_without_a_paper_number_shows_an_empty_cell_not_nan():
    exp = {**EXP, "models": {**EXP["models"], "logreg_mean_w2v": ""}}
    md, _ = build_table("t1", exp, _three_systems() + _system("logreg_mean_w2v", BASE))
    row = next(line for line in md.splitlines() if line.startswith("| logreg_mean_w2v |"))
    assert "nan" not in row.lower() and row.split("|")[5].strip() == ""


def test_classical_runs_state_no_optimiser_or_epochs():
    runs = _three_systems() + [
        {**r, "kind": "classical", "training": {**r["training"], "normalize": "zscore", "class_weights": False,
                                               "length_weights": False, "input_mode": "utterance",
                                               "crop_seconds": None, "fixed_seconds": None, "augment": {},
                                               "max_frames": None, "pool_frames": None, "reference": None}}
        for r in _system("logreg_mean_w2v", BASE)]
    exp = {**EXP, "models": {**EXP["models"], "logreg_mean_w2v": ""}}
    md, _ = build_table("t1", exp, runs)
    line = next(line for line in md.splitlines() if line.startswith("  - `logreg_mean_w2v`:"))
    assert "scikit-learn" in line and "Adam" not in line and "epochs" not in line.replace("or epochs", "")


@pytest.mark.parametrize("head_shift, verdict", [(0, "within 2 points"), (-3, "trails by more than 2 points")])
def test_heads_are_set_against_their_convex_reference(head_shift, verdict):
    exp = {**EXP, "models": {**EXP["models"], "logreg_mean_w2v": ""},
           "convex_references": {"mean_pool_w2v": "logreg_mean_w2v"}}
    # recall per class moves by whole utterances (PER_CLASS = 10): -3 per class is -30 points
    head = [[max(0, c + head_shift) for c in f] for f in BASE]
    runs = (_system("mean_pool_w2v", head) + _system("mlp_pool_w2v", BETTER) + _system("attention_pool_w2v", BASE)
            + _system("logreg_mean_w2v", BASE))
    md, _ = build_table("t1", exp, runs)
    assert "### Heads against their convex reference (UA)" in md
    row = next(line for line in md.splitlines() if line.startswith("| mean_pool_w2v | logreg_mean_w2v |"))
    assert verdict in row and "| 8 |" in row


def test_a_noisy_gap_is_reported_as_undecided():
    exp = {**EXP, "models": {**EXP["models"], "logreg_mean_w2v": ""},
           "convex_references": {"mean_pool_w2v": "logreg_mean_w2v"}}
    noisy = [[c + (1 if i % 2 else -2) for c in f] for i, f in enumerate(BASE)]  # mean -5 points, spread 30
    runs = (_system("mean_pool_w2v", noisy) + _system("mlp_pool_w2v", BETTER) + _system("attention_pool_w2v", BASE)
            + _system("logreg_mean_w2v", BASE))
    md, _ = build_table("t1", exp, runs)
    row = next(line for line in md.splitlines() if line.startswith("| mean_pool_w2v | logreg_mean_w2v |"))
    assert "too few test utterances" in row

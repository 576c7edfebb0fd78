"""Tables put the paper's number beside ours, state the protocol, and flag random-init features."""
import numpy as np

from ser_pipeline.reporting.plots import confusion_markdown, scaling_plot
from ser_pipeline.reporting.tables import build_table


def _run(model, fold, seed, ua, size="full", random_init=False):
    return {"model": model, "fold": fold, "seed": seed, "size_per_class": size, "corpus": "demo",
            "protocol": "loso", "protocol_description": "train on all other sessions, test on the held-out session",
            "epoch_selection": "fixed epochs, no early stopping",
            "n_train_per_class": {"neu": 10, "hap": 10, "sad": 10, "ang": 10},
            "metrics": {"UA": ua, "WA": ua + 0.05, "classes": ["neu", "hap", "sad", "ang"],
                        "confusion": np.eye(4, dtype=int).tolist()},
            "features": {"audio": {"extractor": "wav2vec1",
                                   "info": {"random_init": random_init, "model_checksum": "random-init:seed=0"}}}}


EXP = {"title": "T1", "sizes": ["full"], "seeds": [0, 1], "metrics": ["UA", "WA"], "paper": "boigne2020_table1",
       "models": {"mean_pool_w2v": "Mean pooling, wav2vec"}}


def test_table_has_ours_beside_the_paper_and_states_the_protocol():
    runs = [_run("mean_pool_w2v", f"f0{k}", s, 0.4 + 0.1 * k) for k in (1, 2) for s in (0, 1)]
    md, df = build_table("t1", EXP, runs)
    row = df.iloc[0]
    assert row["UA_mean"] == 55.0 and row["runs"] == 4 and row["folds"] == 2
    assert row["UA_paper"] == 54.9
    assert "| mean_pool_w2v | Mean pooling, wav2vec | full (10) | 55.0 ± 5.8 | 54.9 |" in md
    assert "held-out session" in md and "UA = unweighted accuracy" in md
    assert "Other rows of the paper's table" in md and "MLP with pooling, LLD" in md
    assert "RANDOMLY INITIALISED" not in md


def test_random_init_features_are_flagged():
    md, _ = build_table("t1", EXP, [_run("mean_pool_w2v", "f01", 0, 0.5, random_init=True)])
    assert "RANDOMLY INITIALISED" in md


def test_paper_confusion_is_shown_in_our_class_order():
    exp = {"paper": "ma2018_table1", "models": {"ma_variable": "Variable-Length"}}
    md = confusion_markdown(exp, [_run("ma_variable", "f01", 0, 0.5)])
    paper_part = md.split("paper (")[1]
    # Ma et al. order neu, ang, hap, sad; ours neu, hap, sad, ang: the sad row ends with 0.
    assert "| sad | 15.89 | 0.48 | 83.64 | 0 |" in paper_part


def test_scaling_plot_writes_png_and_svg(tmp_path):
    exp = {"title": "F2", "metrics": ["UA"], "paper": "boigne2020_fig2",
           "models": {"mlp_pool_w2v": "MLP with pooling, wav2vec"}}
    runs = [_run("mlp_pool_w2v", "f01", 0, 0.3 + 0.05 * i, size=s) for i, s in enumerate([12, 24, "full"])]
    scaling_plot("f2", exp, runs, str(tmp_path / "a.png"), str(tmp_path / "a.svg"))
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "a.svg").read_bytes()[:500]

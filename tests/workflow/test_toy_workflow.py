"""End to end on the toy config: every stage runs, nothing reruns, edits rerun little."""
from __future__ import annotations

import json

import pytest
import yaml

from wf_helpers import REPO, copy_repo, dry_run_outputs, planned_jobs, snakemake

pytestmark = pytest.mark.slow


def test_toy_run_produces_every_output(toy_run):
    root, _ = toy_run
    r = root / "results"
    for exp in ("table", "scaling", "ma"):
        md = (r / "tables" / f"{exp}.md").read_text()
        assert "Protocol" in md and "UA" in md
        assert (r / "tables" / f"{exp}.csv").stat().st_size > 0
    assert (r / "plots" / "scaling.png").stat().st_size > 1000
    assert (r / "plots" / "scaling.svg").stat().st_size > 1000
    assert (r / "plots" / "ma_confusion.png").stat().st_size > 1000
    assert "Confusion matrices" in (r / "tables" / "ma.md").read_text()
    run = json.loads((r / "runs/toy/loso_session/mean_pool_lld/n1/s0/f01.json").read_text())
    assert run["n_train_per_class"] == {"neu": 1, "hap": 1, "sad": 1, "ang": 1}
    assert run["protocol_description"].startswith("train on all other sessions")
    assert 0.0 <= run["metrics"]["UA"] <= 1.0
    ma = json.loads((r / "runs/toy/loso_speaker/ma_variable/nfull/s0/f01.json").read_text())
    assert ma["n_val"] > 0 and ma["epoch_selection"] == "best validation UA"
    assert not list(r.rglob(".*.tmp-*")), "no temporary file may survive a complete run"


def test_nothing_to_do_after_a_complete_run(toy_run):
    root, _ = toy_run
    assert planned_jobs(snakemake(root, "-n")) == {}


def _edit_config(root, fn):
    path = root / "config.yaml"
    original = path.read_text()
    cfg = yaml.safe_load(original)
    fn(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return lambda: path.write_text(original)


def test_editing_one_models_hparams_reruns_only_that_model(toy_run):
    root, _ = toy_run
    restore = _edit_config(root, lambda c: c["models"]["mlp_pool_lld"]["hparams"].update(units=8))
    try:
        proc = snakemake(root, "-n")
    finally:
        restore()
    jobs = planned_jobs(proc)
    trained = [o for o in dry_run_outputs(proc) if "/runs/" in o]
    assert trained and all("/mlp_pool_lld/" in o for o in trained), trained
    assert "extract" not in jobs and "folds" not in jobs and "manifest" not in jobs
    assert jobs["train"] == 4  # 2 folds x 2 sizes x 1 seed
    assert jobs.get("table") == 1  # only the scaling experiment's table reads mlp_pool_lld


def test_editing_one_models_source_reruns_only_models_of_that_arch(toy_run):
    root, _ = toy_run
    src = root / "ser_pipeline" / "models" / "ma_crnn.py"
    original = src.read_text()
    src.write_text(original + "\n# an edit\n")
    try:
        proc = snakemake(root, "-n")
    finally:
        src.write_text(original)
    trained = [o for o in dry_run_outputs(proc) if "/runs/" in o]
    assert trained and all("/ma_variable/" in o for o in trained), trained
    assert "extract" not in planned_jobs(proc)


def test_editing_one_features_config_reruns_that_feature_and_its_models(toy_run):
    root, _ = toy_run
    restore = _edit_config(root, lambda c: c["features"]["lld"].update(max_seconds=4))
    try:
        proc = snakemake(root, "-n")
    finally:
        restore()
    outs = dry_run_outputs(proc)
    extracted = [o for o in outs if "/features/" in o]
    assert extracted == ["results/features/toy/lld.zarr"], extracted
    trained = {o.split("/")[4] for o in outs if "/runs/" in o}
    assert trained == {"mean_pool_lld", "mlp_pool_lld", "bimodal"}, trained


def test_report_is_generated(toy_run):
    root, _ = toy_run
    snakemake(root, "--report", "report.html")
    html = (root / "report.html").read_text(errors="replace")
    assert "Tables" in html and "Scaling curves" in html


def test_lint_is_clean():
    proc = snakemake(REPO, "--lint")
    assert "Congratulations" in proc.stdout + proc.stderr


def test_default_config_dry_run_plans_every_stage(tmp_path):
    root = copy_repo(tmp_path / "repo", REPO / "config.yaml")
    jobs = planned_jobs(snakemake(root, "-n"))
    assert jobs["demo_corpus"] == 1 and jobs["manifest"] == 1
    assert jobs["extract"] == len(yaml.safe_load((REPO / "config.yaml").read_text())["features"])
    assert jobs["train"] > 100 and jobs["table"] == 5 and jobs["scaling_plot"] == 1

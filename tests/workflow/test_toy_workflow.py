"""End to end on the toy config: every stage runs, nothing reruns, edits rerun exactly what they change."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wf_helpers import REPO, copy_repo, dry_run_jobs, dry_run_outputs, planned_jobs, snakemake

pytestmark = pytest.mark.slow


def test_toy_run_produces_every_output(toy_run):
    root, _ = toy_run
    r = root / "results"
    for exp in ("table", "scaling", "ma", "li", "li_cross", "tri", "tri_sweep"):
        md = (r / "tables" / f"{exp}.md").read_text()
        assert "UA" in md or "accuracy" in md, exp
        assert (r / "tables" / f"{exp}.csv").stat().st_size > 0
    assert (r / "plots" / "scaling.png").stat().st_size > 1000
    assert (r / "plots" / "ma_confusion.png").stat().st_size > 1000
    assert (r / "plots" / "li_tsne.png").stat().st_size > 1000
    assert "Probe accuracy" in (r / "tables" / "li_speaker_probe.md").read_text()
    run = json.loads((r / "runs/toy/loso_session/mean_pool_lld/n1/s0/f01.json").read_text())
    assert run["n_train_per_class"] == {"neu": 1, "hap": 1, "sad": 1, "ang": 1}
    assert run["protocol_description"].startswith("train on all other sessions")
    assert run["labels"]["merge"] == {"exc": "hap"} and len(run["predictions"]["test"]["utt_id"]) == run["n_test"]
    menan = json.loads((r / "runs/toy/loso_speaker/li_menan/nfull/s0/f01.json").read_text())
    assert "speaker_entropy" in menan["history"][0] and menan["n_train_augmented"] == menan["n_train"]
    svm = json.loads((r / "runs/toy_aibo/aibo/svm/nfull/s0/f01.json").read_text())
    assert svm["kind"] == "classical" and "validation" in svm["classical"]["selection"]
    eres = json.loads((r / "runs/toy_aibo/aibo/eresnet/nfull/s0/f01.json").read_text())
    assert len(eres["metrics_by_reference"]) == 2 and "batch_size_selection" in eres
    cross = json.loads((r / "crosscorpus/li_cross/li_menan/s0/f01.json").read_text())
    assert cross["eval_corpus"] == "toy_mosei" and cross["n"] > 0
    assert (r / "models/toy/loso_speaker/li_menan/nfull/s0/f01/embeddings.npz").is_file()
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
    assert trained == {"mean_pool_lld", "mlp_pool_lld", "logreg_lld", "bimodal"}, trained


def test_csv_corpus_of_48k_stereo_files_runs_end_to_end_and_its_csv_is_an_input(tmp_path):
    """48 kHz stereo files need no conversion by hand; the CSV of a CSV corpus is an input of
    its manifest, so a fixed row or label reruns it and what follows."""
    import numpy as np
    import soundfile as sf

    root = copy_repo(tmp_path / "repo", REPO / "tests" / "workflow" / "toy_config.yaml")
    rng = np.random.default_rng(0)
    lines = ["path,speaker,session,label"]
    for s in (1, 2):
        for g in "FM":
            for lab in ("neu", "hap", "sad", "ang"):
                wav = root / "corpus" / f"s{s}{g}_{lab}.wav"
                wav.parent.mkdir(exist_ok=True)
                sf.write(wav, rng.normal(0, 0.1, (48000, 2)).astype(np.float32), 48000)
                lines.append(f"{wav.name},S{s}{g},S{s},{lab}")
    (root / "corpus" / "corpus.csv").write_text("\n".join(lines) + "\n")
    cfg = {"results": "results", "device": "cpu",
           "corpora": {"mine": {"loader": "csv", "path": "corpus/corpus.csv", "groups": {"session": 2},
                                "labels": {"classes": ["neu", "hap", "sad", "ang"]}}},
           "protocols": {"loso": {"scheme": "leave_one_session_out"}},
           "features": {"lld": {"extractor": "lld"}},
           "models": {"m": {"arch": "mean_pool", "inputs": {"audio": "lld"}}},
           "experiments": {"t": {"corpus": "mine", "protocol": "loso", "sizes": ["full"], "seeds": [0],
                                 "models": {"m": ""}}}}
    cfg["models"]["m"]["train"] = {"epochs": 1}
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(root)
    run = json.loads((root / "results/runs/mine/loso/m/nfull/s0/f01.json").read_text())
    assert run["n_test"] == 8
    from ser_pipeline.manifest import read_manifest

    man = read_manifest(root / "results/corpora/mine/manifest.csv")
    assert set(man["source_sr"]) == {48000.0} and set(man["source_channels"]) == {2.0}
    assert planned_jobs(snakemake(root, "-n")) == {}
    csv = root / "corpus" / "corpus.csv"
    csv.write_text(csv.read_text().replace("S1F,S1,hap", "S1F,S1,neu"))
    jobs = dry_run_jobs(snakemake(root, "-n", "--until", "folds", "utterances"))
    manifest = [j for j in jobs if j["rule"] == "manifest"]
    assert manifest and "corpus/corpus.csv" in manifest[0]["reason"]
    assert {j["rule"] for j in jobs} == {"manifest", "utterances", "folds"}


def test_every_job_imported_only_modules_its_digest_covers(toy_run):
    """What each job really imported (SER_RECORD_IMPORTS) lies inside its static closure."""
    from ser_pipeline import codedeps

    root, _ = toy_run
    records = [json.loads(p.read_text()) for p in (root / "imports").glob("*.json")]
    seen_stages = set()
    for rec in records:
        argv = rec["argv"]
        spec = json.loads(argv[argv.index("--spec") + 1])
        seen_stages.add(argv[1])
        static = set(codedeps.closure(spec["modules"]))
        missed = sorted(set(rec["modules"]) - static)
        assert not missed, f"{argv[1]} imported {missed} but its digest does not cover them"
    assert {"demo-corpus", "prepare", "utterances", "folds", "extract", "train", "crosscorpus", "table",
            "plot", "probe", "summary"} <= seen_stages


def _module_file(mod: str) -> str:
    rel = mod.replace(".", "/")
    return f"{rel}/__init__.py" if (REPO / rel).is_dir() else f"{rel}.py"


def test_editing_each_package_module_reruns_exactly_the_jobs_that_import_it(toy_run):
    """For every module: a dry run after an edit plans exactly the jobs whose code imports it."""
    from ser_pipeline import codedeps, config as sp

    root, _ = toy_run
    cfg = sp.load_config(root / "config.yaml")
    expected_by_module: dict[str, set] = {}
    for job, spec in _job_specs(cfg).items():
        for mod in codedeps.closure(spec["modules"]):
            expected_by_module.setdefault(mod, set()).add(job)
    modules = sorted(p.relative_to(REPO).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
                     for p in (REPO / "ser_pipeline").rglob("*.py"))
    # Two copies of the finished run (metadata included) take the dry runs in parallel.
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    twin = root.parent / "twin"
    if not twin.exists():
        shutil.copytree(root, twin, symlinks=True)
    problems = []

    def check(where, mods):
        for mod in mods:
            path = where / _module_file(mod)
            original = path.read_text()
            path.write_text(original + "\n# an edit\n")
            try:
                jobs = dry_run_jobs(snakemake(where, "-n"))
            finally:
                path.write_text(original)
            planned = {j["output"] for j in jobs}
            expected = expected_by_module.get(mod, set())
            if not expected <= planned:
                problems.append(f"editing {mod} misses {sorted(expected - planned)[:4]}")
            for j in jobs:
                if "Params have changed" in j["reason"] and j["output"] not in expected:
                    problems.append(f"editing {mod} reruns {j['output']}, whose code does not import it")
                elif j["output"] not in expected and not j["reason"].startswith("Input files updated by another job"):
                    problems.append(f"editing {mod}: {j['output']} reruns for '{j['reason']}'")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda args: check(*args), [(root, modules[0::2]), (twin, modules[1::2])]))
    assert not problems, "\n".join(problems[:20])


def _job_specs(cfg) -> dict[str, dict]:
    """{first output: spec} of the jobs that carry a code digest."""
    from ser_pipeline import config as sp

    out = {}
    for corpus in sp.corpora_in_use(cfg):
        base = sp.corpus_dir(cfg, corpus)
        if "demo" in cfg["corpora"][corpus]:
            out[f"{base}/demo/.done"] = sp.demo_spec(cfg, corpus)
        out[f"{base}/manifest.csv"] = sp.prepare_spec(cfg, corpus)
        out[f"{base}/utterances.csv"] = sp.utterances_spec(cfg, corpus)
        for feature in sp.features_of_corpus(cfg, corpus):
            out[sp.store_path(cfg, corpus, feature)] = sp.feature_spec(cfg, feature)
    r = cfg["results"]
    for name, exp in cfg["experiments"].items():
        c, p = exp["corpus"], exp["protocol"]
        out[f"{sp.corpus_dir(cfg, c)}/folds/{p}.json"] = sp.fold_spec(cfg, c, p)
        for m in exp["models"]:
            for size in exp["sizes"]:
                for seed in exp["seeds"]:
                    for fold in sp.fold_names(cfg, c, p):
                        out[sp.run_path(r, c, p, m, size, seed, fold)] = sp.train_spec(cfg, c, p, m, size, seed, fold)
                        if exp.get("kind") == "cross_corpus":
                            out[sp.crosscorpus_path(r, name, m, seed, fold)] = sp.crosscorpus_spec(cfg, name, m, seed, fold)
        out[f"{r}/tables/{name}.md"] = sp.experiment_spec(cfg, name)
        for plot in sp.experiment_outputs(cfg, name):
            if "/plots/" in plot and plot.endswith(".png") and not plot.endswith("_tsne.png"):
                out[plot] = sp.plot_spec(cfg, name)
        if exp.get("probe"):
            out[f"{r}/tables/{name}_speaker_probe.md"] = sp.probe_spec(cfg, name)
    for name in cfg.get("exports") or {}:
        out[sp.export_dir(cfg, name)] = sp.export_spec(cfg, name)
    out[f"{r}/summary.md"] = sp.summary_spec(cfg)
    return out


def test_report_is_generated(toy_run):
    root, _ = toy_run
    snakemake(root, "--report", "report.html")
    html = (root / "report.html").read_text(errors="replace")
    assert "Tables" in html and "Scaling curves" in html


def test_lint_is_clean():
    proc = snakemake(REPO, "--lint")
    assert "Congratulations" in proc.stdout + proc.stderr


def test_default_config_dry_run_plans_every_stage(tmp_path):
    from ser_pipeline import config as sp

    root = copy_repo(tmp_path / "repo", REPO / "config.yaml")
    jobs = planned_jobs(snakemake(root, "-n"))
    cfg = sp.load_config(REPO / "config.yaml")
    assert jobs["demo_corpus"] == 3 and jobs["manifest"] == 3
    assert jobs["extract"] == sum(len(sp.features_of_corpus(cfg, c)) for c in sp.corpora_in_use(cfg))
    assert jobs["table"] == len(cfg["experiments"]) and jobs["crosscorpus"] > 0 and jobs["probe"] == 1


def test_readme_iemocap_command_runs_exactly_that_config(tmp_path):
    """`--configfile config/iemocap.yaml` is not merged with config.yaml (README command)."""
    root = copy_repo(tmp_path / "repo", REPO / "config.yaml")
    proc = snakemake(root, "-n", "--configfile", "config/iemocap.yaml")
    outs = dry_run_outputs(proc)
    text = proc.stdout + proc.stderr
    ma_folds = {o.rsplit("/", 1)[-1] for o in outs if "/runs/iemocap/loso_speaker_improvised/ma_variable/" in o}
    assert len(ma_folds) == 10, sorted(ma_folds)  # paper: both speakers of each session tested
    assert not any("/corpora/demo" in o or "wav2vec2" in o for o in outs), "nothing of the demo config"
    assert '"conv_channels": [8, 8, 16]' not in text, "the demo's narrow Ma CNN must not leak in"


def test_results_folder_with_spaces_and_shell_characters_is_quoted(tmp_path):
    """Every path in a shell line is quoted: a results folder `a b;touch PWNED` is a folder."""
    root = copy_repo(tmp_path / "repo", REPO / "tests" / "workflow" / "toy_config.yaml")
    weird = "my results;touch PWNED"
    snakemake(root, "--config", f"results={weird}", "--until", "folds", "utterances")
    assert not (root / "PWNED").exists()
    assert (root / weird / "corpora" / "toy" / "folds" / "loso_session.json").is_file()
    assert (root / weird / "corpora" / "toy" / "utterances.csv").is_file()
    assert not (root / "my results").exists(), "the folder name is not split at the space"


def test_predict_reproduces_a_fold_models_probabilities_and_reads_any_audio(toy_run, tmp_path):
    """A fold model on its own test utterances (given as a CSV of wav segments) gives the
    probabilities its training job recorded; a 44.1 kHz stereo file and an exported model work too."""
    import subprocess
    import sys

    import numpy as np
    import pandas as pd
    import soundfile as sf

    from ser_pipeline.audio import read_audio
    from ser_pipeline.manifest import read_manifest

    root, _ = toy_run
    r = root / "results"
    run_path = r / "runs/toy/loso_session/mean_pool_lld/nfull/s0/f01.json"
    run = json.loads(run_path.read_text())
    man = read_manifest(r / "corpora/toy/manifest.csv").set_index("utt_id")
    ids = run["predictions"]["test"]["utt_id"]
    rows = man.loc[ids, ["audio_path", "start", "end"]].rename(columns={"audio_path": "path"})
    rows.to_csv(tmp_path / "in.csv", index=False)
    env = {"PYTHONPATH": str(root), "PATH": f"{Path(sys.executable).parent}", "HOME": str(tmp_path)}

    def predict(*args):
        proc = subprocess.run([sys.executable, "-m", "ser_pipeline", "predict", *args], cwd=root, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc

    predict("--model", str(run_path), "--out", str(tmp_path / "out.csv"), str(tmp_path / "in.csv"))
    out = pd.read_csv(tmp_path / "out.csv")
    probs = out[[f"p_{c}" for c in run["labels"]["classes"]]].to_numpy()
    np.testing.assert_allclose(probs, np.array(run["predictions"]["test"]["probs"]), atol=2e-5)

    import torch
    import torchaudio.functional as AF

    x = read_audio(rows.iloc[0]["path"], rows.iloc[0]["start"], rows.iloc[0]["end"])
    y = AF.resample(torch.from_numpy(x), 16000, 44100).numpy()
    sf.write(tmp_path / "stereo.wav", np.stack([y, 0.5 * y], axis=1), 44100)
    one = pd.read_csv(__import__("io").StringIO(predict("--model", str(run_path), str(tmp_path / "stereo.wav")).stdout))
    assert one["predicted"].iloc[0] in run["labels"]["classes"] and len(one) == 1
    assert abs(one[[f"p_{c}" for c in run["labels"]["classes"]]].to_numpy().sum() - 1) < 1e-4

    export = r / "export/li_all"
    assert json.loads((export / "model.json").read_text())["export"]["epochs"].startswith(("1 epochs", "2 epochs"))
    predict("--model", str(export), "--window", "1.0", "--hop", "0.5", "--out", str(tmp_path / "w.csv"),
            str(tmp_path / "stereo.wav"))
    windows = pd.read_csv(tmp_path / "w.csv")
    assert len(windows) >= 2 and (windows["end"] - windows["start"] <= 1.0 + 1e-6).all()


def test_a_model_folder_from_other_code_is_refused(toy_run, tmp_path):
    import shutil

    from ser_pipeline.errors import ConfigError
    from ser_pipeline.inference import LoadedModel

    root, _ = toy_run
    src = root / "results/models/toy/loso_session/mean_pool_lld/nfull/s0/f01"
    dst = tmp_path / "m"
    shutil.copytree(src, dst)
    rec = json.loads((dst / "model.json").read_text())
    rec["model_code"] = "0000000000000000"
    (dst / "model.json").write_text(json.dumps(rec))
    with pytest.raises(ConfigError, match="other model code"):
        LoadedModel(dst)

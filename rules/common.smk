# Helpers for the rules; no rules here. Everything derived from config.yaml (paths, job
# lists, rerun digests, job specs) comes from ser_pipeline.config so it is unit-tested.
import json
import re

from ser_pipeline import config as sp

sp.check_references(config)

R = config["results"]


wildcard_constraints:
    corpus=r"[A-Za-z0-9_.-]+",
    protocol=r"[A-Za-z0-9_.-]+",
    feature=r"[A-Za-z0-9_.-]+",
    model=r"[A-Za-z0-9_.-]+",
    size=r"full|[0-9]+",
    seed=r"[0-9]+",
    fold=r"f[0-9]+",
    experiment="|".join(re.escape(e) for e in config["experiments"]),


def all_outputs(cfg):
    return sp.all_outputs(cfg)


def corpus_root(corpus):
    c = config["corpora"][corpus]
    return f"{R}/corpora/{corpus}/demo/IEMOCAP_full_release" if "demo" in c else c["path"]


def demo_marker(wc):
    return [f"{R}/corpora/{wc.corpus}/demo/.done"] if "demo" in config["corpora"][wc.corpus] else []


def prepare_spec(wc):
    c = config["corpora"][wc.corpus]
    return json.dumps({"corpus": wc.corpus, "loader": c["loader"], "path": corpus_root(wc.corpus),
                       "options": c.get("options", {}), "classes": c["classes"]}, sort_keys=True)


def fold_spec(wc):
    return json.dumps({"corpus": wc.corpus, "protocol": wc.protocol,
                       "protocol_spec": config["protocols"][wc.protocol],
                       "expected_folds": len(sp.fold_names(config, wc.corpus, wc.protocol))}, sort_keys=True)


def feature_spec(wc):
    return json.dumps({"feature": config["features"][wc.feature],
                       "digest": sp.feature_digest(config, wc.feature)}, sort_keys=True)


def feature_uses_gpu(wc):
    return sp.feature_uses_gpu(config, wc.feature)


def model_stores(wc):
    return {s: f"{R}/features/{wc.corpus}/{f}.zarr" for s, f in config["models"][wc.model]["inputs"].items()}


def train_spec(wc):
    return json.dumps({
        "model_name": wc.model, "model": config["models"][wc.model],
        "digest": sp.model_digest(config, wc.model),
        "corpus": wc.corpus, "protocol": wc.protocol, "fold": wc.fold,
        "size": wc.size if wc.size == "full" else int(wc.size), "seed": int(wc.seed),
        "classes": config["corpora"][wc.corpus]["classes"], "device": config["device"],
        "manifest": f"{R}/corpora/{wc.corpus}/manifest.csv",
        "fold_file": f"{R}/corpora/{wc.corpus}/folds/{wc.protocol}.json",
        "stores": model_stores(wc),
    }, sort_keys=True)


def model_uses_gpu(wc):
    return sp.model_uses_gpu(config, wc.model)


def experiment_runs(wc):
    return sp.experiment_runs(config, wc.experiment)


def experiment_spec(wc):
    exp = config["experiments"][wc.experiment]
    return json.dumps({"name": wc.experiment, "experiment": exp, "digest": sp.reporting_digest()}, sort_keys=True)

# Helpers for the rules; no rules here. Everything derived from config.yaml (paths, job
# lists, job specs with their rerun digests) comes from ser_pipeline.config, where it is
# unit-tested; these functions only adapt it to wildcards.
import json
import re

from snakemake.exceptions import WorkflowError

R = config["results"]


wildcard_constraints:
    corpus=r"[A-Za-z0-9_.-]+",
    protocol=r"[A-Za-z0-9_.-]+",
    feature=r"[A-Za-z0-9_.-]+",
    model=r"[A-Za-z0-9_.-]+",
    size=r"full|[0-9]+",
    seed=r"[0-9]+",
    fold=r"f[0-9]+",
    export=r"[A-Za-z0-9_.-]+",
    target=sp.download_target_pattern(config),
    experiment="|".join(re.escape(e) for e in config["experiments"]),


def as_json(spec):
    return json.dumps(spec, sort_keys=True)


def demo_spec(wc):
    return as_json(sp.demo_spec(config, wc.corpus))


def corpus_inputs(wc):
    return sp.corpus_input_files(config, wc.corpus)


def prepare_spec(wc):
    return as_json(sp.prepare_spec(config, wc.corpus))


def utterances_spec(wc):
    return as_json(sp.utterances_spec(config, wc.corpus))


def fold_spec(wc):
    return as_json(sp.fold_spec(config, wc.corpus, wc.protocol))


def feature_spec(wc):
    return as_json(sp.feature_spec(config, wc.feature))


def feature_uses_gpu(wc):
    return sp.feature_uses_gpu(config, wc.feature)


def machine_cores():
    # --cores of this run; None where Snakemake has no total (cluster runs without --cores).
    try:
        return workflow.cores
    except WorkflowError:
        return None


def feature_threads(wc):
    return sp.feature_threads(config, wc.feature, machine_cores())


def corpus_threads(wc):
    return sp.half_the_cores(machine_cores(), 2)  # the demo generator runs 2 espeak-ng processes


def train_inputs(wc):
    stores = sp.model_stores(config, wc.corpus, wc.model)
    extra = [p for paths in sp.augment_stores(config, wc.corpus, wc.model).values() for p in paths]
    return {**stores, **{f"augment{i}": p for i, p in enumerate(extra)}}


def train_spec(wc):
    size = wc.size if wc.size == "full" else int(wc.size)
    return as_json(sp.train_spec(config, wc.corpus, wc.protocol, wc.model, size, int(wc.seed), wc.fold))


def train_priority(wc):
    # A job on the full training part is the longest of its model's jobs.
    return 1 if wc.size == "full" else 0


def model_uses_gpu(wc):
    return sp.model_uses_gpu(config, wc.model)


def experiment_runs(wc):
    return sp.experiment_runs(config, wc.experiment)


def experiment_spec(wc):
    return as_json(sp.experiment_spec(config, wc.experiment))


def plot_spec(wc):
    return as_json(sp.plot_spec(config, wc.experiment))


def crosscorpus_inputs(wc):
    spec = sp.crosscorpus_spec(config, wc.experiment, wc.model, int(wc.seed), wc.fold)
    return {"model": spec["model_dir"], "manifest": spec["manifest"], **spec["stores"]}


def crosscorpus_spec(wc):
    return as_json(sp.crosscorpus_spec(config, wc.experiment, wc.model, int(wc.seed), wc.fold))


def probe_inputs(wc):
    return [d for folds in sp.experiment_model_dirs(config, wc.experiment).values() for d in folds.values()]


def probe_spec(wc):
    return as_json(sp.probe_spec(config, wc.experiment))


def export_inputs(wc):
    spec = sp.export_spec(config, wc.export)
    extra = [p for paths in spec["augment_stores"].values() for p in paths]
    return {**spec["stores"], "manifest": spec["manifest"], "runs": spec["runs"],
            **{f"augment{i}": p for i, p in enumerate(extra)}}


def export_spec(wc):
    return as_json(sp.export_spec(config, wc.export))

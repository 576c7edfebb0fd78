"""Reading and checking config.yaml, and everything the Snakefile derives from it.

Kept free of torch, numpy and the stage modules so that building the job graph (which
imports this on every Snakemake invocation) stays fast. The Snakefile only wires; job
enumeration, output paths, job specs and rerun digests live here where they can be tested.

Rerun digests: every job's spec carries ``digest``, a hash of its config entries and of the
package code the job can execute (:mod:`ser_pipeline.codedeps` follows the imports of the
job's stage module plus the registry module of its arch, extractor or loader). Editing a
module reruns exactly the jobs whose code imports it; nothing is kept by hand.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import yaml

from ser_pipeline import codedeps
from ser_pipeline.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

# Group counts a loader knows before reading the data (fold ids are fixed by the config,
# so a dry run shows every job). Other corpora give them under corpora.<name>.groups.
KNOWN_GROUPS = {"iemocap": {"session": 5, "speaker": 10}}
DEMO_GROUPS = {"iemocap": lambda d: {"session": d.get("sessions", 5), "speaker": 2 * d.get("sessions", 5)}}
# Mirrors of two class flags of the extractors (Extractor.supports_gpu, .threaded), kept here
# because the workflow reads them for every job and must not import torch to do so;
# tests/unit/test_registries.py keeps them equal to the classes.
CPU_ONLY_EXTRACTORS = {"egemaps"}
THREADED_EXTRACTORS = {"wav2vec1", "hf_ssl", "bert"}
# Cores an extraction job of a threaded extractor claims at most; every other extraction job
# claims one (see feature_threads).
EXTRACT_THREADS = 4

# Registries, derived from the decorators (see codedeps.registered).
REGISTRIES = {"model": ("register_model", "ser_pipeline.models"),
              "extractor": ("register", "ser_pipeline.features"),
              "loader": ("register_loader", "ser_pipeline.corpora"),
              "demo": ("register_demo", "ser_pipeline.corpora"),
              "eval_rule": ("register_eval_rule", "ser_pipeline.corpora")}


def registry(kind: str) -> dict[str, str]:
    """{name: module} of the models, extractors, corpus loaders or demo generators."""
    return codedeps.registered(*REGISTRIES[kind])


# ---------------------------------------------------------------- loading and checking

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _no_duplicates(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` overrides on purpose
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key '{key}' at line {key_node.start_mark.line + 1} "
                              f"(first at line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_yaml(path) -> dict:
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_StrictLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None


def load_config(path) -> dict:
    return validate(read_yaml(path), source=str(path))


def validate(cfg: dict, source: str = "config") -> dict:
    """Schema check (filling defaults) plus the cross-references a schema cannot express."""
    import jsonschema

    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: the config must be a mapping")
    schema = yaml.safe_load(SCHEMA.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = _with_defaults(validator_cls)(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        key = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: config key '{key}': {e.message}")
    check_references(cfg, source)
    return cfg


def _with_defaults(validator_cls):
    validate_props = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = json.loads(json.dumps(sub["default"]))
        yield from validate_props(validator, properties, instance, schema)

    import jsonschema

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


def check_references(cfg: dict, source: str = "config") -> None:
    """Cross-references and registry names, each error naming its key."""
    def err(key, msg):
        return ConfigError(f"{source}: config key '{key}': {msg}")

    loaders, demos, archs, extractors = (registry(k) for k in ("loader", "demo", "model", "extractor"))
    for name, corpus in cfg["corpora"].items():
        if corpus["loader"] not in loaders:
            raise err(f"corpora.{name}.loader", f"'{corpus['loader']}' is not a loader ({sorted(loaders)})")
        if "demo" not in corpus and "path" not in corpus:
            raise err(f"corpora.{name}", "give 'path' (your corpus) or 'demo' (generate one)")
        if "demo" in corpus and corpus["loader"] not in demos:
            raise err(f"corpora.{name}.demo", f"no demo generator for loader '{corpus['loader']}' "
                                              f"(demos exist for {sorted(demos)})")
        if corpus.get("labels"):
            _check_labels(corpus["labels"], err, f"corpora.{name}.labels")
        if "download" in corpus and "path" not in corpus:
            raise err(f"corpora.{name}.download", "give the folder to download into as 'path'")
    for name, proto in cfg["protocols"].items():
        if proto.get("labels"):
            _check_labels(proto["labels"], err, f"protocols.{name}.labels")
        if proto["scheme"] == "predefined" and not (proto.get("train") and proto.get("test")):
            raise err(f"protocols.{name}", "a predefined split needs 'train' and 'test' values")
        if proto["scheme"] == "group_kfold" and "k" not in proto:
            raise err(f"protocols.{name}.k", "group_kfold needs k")
    for name, feat in cfg["features"].items():
        if feat["extractor"] not in extractors:
            raise err(f"features.{name}.extractor", f"'{feat['extractor']}' is not an extractor ({sorted(extractors)})")
    for name, model in cfg["models"].items():
        if model["arch"] not in archs:
            raise err(f"models.{name}.arch", f"'{model['arch']}' is not a model ({sorted(archs)})")
        for stream, feat in model["inputs"].items():
            if feat not in cfg["features"]:
                raise err(f"models.{name}.inputs.{stream}", f"no feature named '{feat}'")
        for stream, feats in (model.get("train", {}).get("augment") or {}).items():
            if stream not in model["inputs"]:
                raise err(f"models.{name}.train.augment.{stream}", f"not an input stream of the model")
            for feat in feats:
                if feat not in cfg["features"]:
                    raise err(f"models.{name}.train.augment.{stream}", f"no feature named '{feat}'")
    for name, e in (cfg.get("exports") or {}).items():
        if e["experiment"] not in cfg["experiments"]:
            raise err(f"exports.{name}.experiment", f"no experiment named '{e['experiment']}'")
        if e["model"] not in cfg["experiments"][e["experiment"]]["models"]:
            raise err(f"exports.{name}.model", f"'{e['model']}' is not a model of experiment '{e['experiment']}'")
        if cfg["experiments"][e["experiment"]].get("kind") == "cross_corpus":
            raise err(f"exports.{name}.experiment", "export from a training experiment, not a cross-corpus one")
    for name, exp in cfg["experiments"].items():
        for key, pool in (("corpus", "corpora"), ("protocol", "protocols")):
            if exp[key] not in cfg[pool]:
                raise err(f"experiments.{name}.{key}", f"no {pool} entry '{exp[key]}'")
        for model in exp["models"]:
            if model not in cfg["models"]:
                raise err(f"experiments.{name}.models", f"no model named '{model}'")
            train = cfg["models"][model].get("train", {})
            needs_val = train.get("select_on_val") or isinstance(train.get("batch_size"), list)
            if needs_val and not protocol_has_validation(cfg["protocols"][exp["protocol"]]):
                raise err(f"models.{model}.train", f"selects on the validation part, but experiment '{name}' "
                                                   f"uses protocol '{exp['protocol']}', which has none")
        if exp.get("kind") == "cross_corpus":
            ev = exp.get("eval") or {}
            if ev.get("corpus") not in cfg["corpora"]:
                raise err(f"experiments.{name}.eval.corpus", f"no corpora entry '{ev.get('corpus')}'")
            rule = ev.get("rule") or {}
            rules = {"labels", *registry("eval_rule")}
            if rule.get("name") not in rules:
                raise err(f"experiments.{name}.eval.rule.name", f"'{rule.get('name')}' is not one of {sorted(rules)}")
        elif exp.get("eval"):
            raise err(f"experiments.{name}.eval", "only a kind: cross_corpus experiment evaluates on another corpus")
        if exp.get("probe"):
            for model in exp["models"]:
                if not cfg["models"][model].get("train", {}).get("save_embeddings"):
                    raise err(f"models.{model}.train.save_embeddings", f"experiment '{name}' probes its "
                                                                        f"embeddings: set save_embeddings: true")
            for model in exp["probe"].get("figure", []):
                if model not in exp["models"]:
                    raise err(f"experiments.{name}.probe.figure", f"'{model}' is not one of its models")
        for head, convex in (exp.get("convex_references") or {}).items():
            for role, model in (("head", head), ("reference", convex)):
                if model not in exp["models"]:
                    raise err(f"experiments.{name}.convex_references", f"{role} '{model}' is not one of its models")
        if exp.get("reference") and exp["reference"] not in exp["models"]:
            raise err(f"experiments.{name}.reference", f"'{exp['reference']}' is not one of its models")
        if exp.get("paper"):
            _check_paper_key(exp["paper"], err, f"experiments.{name}.paper")
        label_spec(cfg, exp["corpus"], exp["protocol"], err=err, key=f"experiments.{name}")
        fold_count(cfg, exp["corpus"], exp["protocol"])  # fails early, naming the key


def _check_labels(spec, err, key) -> None:
    classes = spec.get("classes") or []
    bad = {k: v for k, v in (spec.get("merge") or {}).items() if v not in classes}
    if classes and bad:
        raise err(f"{key}.merge", f"{bad} maps to labels that are not in classes {classes}")


def _check_paper_key(key: str, err, where: str) -> None:
    papers = yaml.safe_load((PACKAGE / "data" / "paper_results.yaml").read_text())
    if key not in papers:
        raise err(where, f"'{key}' is not in ser_pipeline/data/paper_results.yaml; known: {sorted(papers)}")


def protocol_has_validation(spec: dict) -> bool:
    scheme = spec["scheme"]
    if scheme == "leave_one_speaker_out":
        return True
    if scheme in ("leave_one_group_out", "group_kfold"):
        return spec.get("validation", "none") != "none"
    if scheme == "predefined":
        return bool(spec.get("val") or spec.get("val_speakers"))
    return False


def label_spec(cfg: dict, corpus: str, protocol: str, err=None, key: str | None = None) -> dict:
    """The protocol's labels (column, merge, classes), else the corpus's default set.

    A protocol's ``labels`` replaces the corpus default as a whole (not key by key), so a
    protocol that lists classes without ``merge`` merges nothing.
    """
    spec = cfg["protocols"][protocol].get("labels") or cfg["corpora"][corpus].get("labels") or {}
    if not spec.get("classes"):
        msg = (f"no classes for corpus '{corpus}' with protocol '{protocol}': give labels.classes "
               f"under corpora.{corpus} or protocols.{protocol}")
        raise (err(key, msg) if err else ConfigError(msg))
    return {"column": spec.get("column", "label"), "merge": dict(spec.get("merge") or {}),
            "classes": list(spec["classes"]), **({"max_dropped_share": spec["max_dropped_share"]}
                                                 if "max_dropped_share" in spec else {})}


# ---------------------------------------------------------------- folds and paths

def n_groups(cfg: dict, corpus: str, column: str) -> int:
    c = cfg["corpora"][corpus]
    if column in (c.get("groups") or {}):
        return int(c["groups"][column])
    if column == "session" and "n_sessions" in c:
        return int(c["n_sessions"])
    if "demo" in c and c["loader"] in DEMO_GROUPS and column in DEMO_GROUPS[c["loader"]](c["demo"]):
        return int(DEMO_GROUPS[c["loader"]](c["demo"])[column])
    if "demo" not in c and column in KNOWN_GROUPS.get(c["loader"], {}):
        return KNOWN_GROUPS[c["loader"]][column]
    raise ConfigError(f"config key 'corpora.{corpus}.groups.{column}': the number of '{column}' groups "
                      f"is needed so the job graph knows how many folds to fan out")


def fold_count(cfg: dict, corpus: str, protocol: str) -> int:
    spec = cfg["protocols"][protocol]
    scheme = spec["scheme"]
    if scheme == "leave_one_session_out":
        return n_groups(cfg, corpus, "session")
    if scheme == "leave_one_speaker_out":
        return n_groups(cfg, corpus, "session") * (2 if spec.get("swap_validation", True) else 1)
    if scheme == "leave_one_group_out":
        return n_groups(cfg, corpus, spec.get("group", "speaker"))
    if scheme == "group_kfold":
        return int(spec["k"])
    return 1  # predefined


def fold_names(cfg: dict, corpus: str, protocol: str) -> list[str]:
    """Fold ids are known before the data is read, so a dry run shows every job."""
    return [f"f{i:02d}" for i in range(1, fold_count(cfg, corpus, protocol) + 1)]


def corpus_dir(cfg: dict, corpus: str) -> str:
    return f"{cfg['results']}/corpora/{corpus}"


def audit_report(cfg: dict, corpus: str) -> str:
    """The audio audit's findings of a corpus (beside its logs: it must survive a failed job)."""
    return f"{cfg['results']}/logs/corpora/{corpus}/audio_audit.csv"


def corpus_root(cfg: dict, corpus: str) -> str:
    """Where the loader reads: the user's path, or the folder the demo generator fills."""
    c = cfg["corpora"][corpus]
    return f"{corpus_dir(cfg, corpus)}/demo" if "demo" in c else c["path"]


def run_path(results: str, corpus, protocol, model, size, seed, fold) -> str:
    return f"{results}/runs/{corpus}/{protocol}/{model}/n{size}/s{seed}/{fold}.json"


def model_dir(results: str, corpus, protocol, model, size, seed, fold) -> str:
    return f"{results}/models/{corpus}/{protocol}/{model}/n{size}/s{seed}/{fold}"


def crosscorpus_path(results: str, exp_name: str, model: str, seed, fold: str) -> str:
    return f"{results}/crosscorpus/{exp_name}/{model}/s{seed}/{fold}.json"


def experiment_runs(cfg: dict, exp_name: str) -> list[str]:
    """The result files an experiment's table reads (training runs, or cross-corpus scores)."""
    exp = cfg["experiments"][exp_name]
    folds = fold_names(cfg, exp["corpus"], exp["protocol"])
    if exp.get("kind") == "cross_corpus":
        return [crosscorpus_path(cfg["results"], exp_name, m, seed, fold)
                for m in exp["models"] for seed in exp["seeds"] for fold in folds]
    return [run_path(cfg["results"], exp["corpus"], exp["protocol"], m, size, seed, fold)
            for m in exp["models"] for size in exp["sizes"] for seed in exp["seeds"] for fold in folds]


def experiment_model_dirs(cfg: dict, exp_name: str) -> dict[str, dict[str, str]]:
    """{model: {fold: saved model folder}} of an experiment's first size and seed."""
    exp = cfg["experiments"][exp_name]
    size, seed = exp["sizes"][0], exp["seeds"][0]
    return {m: {f: model_dir(cfg["results"], exp["corpus"], exp["protocol"], m, size, seed, f)
                for f in fold_names(cfg, exp["corpus"], exp["protocol"])} for m in exp["models"]}


def experiment_outputs(cfg: dict, exp_name: str) -> list[str]:
    exp, r = cfg["experiments"][exp_name], cfg["results"]
    kind = exp.get("kind", "table")
    outs = [f"{r}/tables/{exp_name}.md", f"{r}/tables/{exp_name}.csv"]
    if kind == "scaling":
        outs += [f"{r}/plots/{exp_name}.png", f"{r}/plots/{exp_name}.svg"]
    if exp.get("confusion"):
        outs += [f"{r}/plots/{exp_name}_confusion.png"]
    if kind != "cross_corpus":
        outs += [f"{r}/plots/{exp_name}_speakers.png"]
    if exp.get("probe"):
        outs += [f"{r}/tables/{exp_name}_speaker_probe.md", f"{r}/plots/{exp_name}_tsne.png"]
    return outs


def corpora_in_use(cfg: dict) -> list[str]:
    return sorted({e["corpus"] for e in cfg["experiments"].values()}
                  | {e["eval"]["corpus"] for e in cfg["experiments"].values() if e.get("eval")})


def features_of_corpus(cfg: dict, corpus: str) -> list[str]:
    """Every feature a model of an experiment on ``corpus`` reads (augmentation included)."""
    feats = set()
    for exp in cfg["experiments"].values():
        if exp["corpus"] == corpus:
            for m in exp["models"]:
                feats.update(model_features(cfg, m))
        if exp.get("eval", {}).get("corpus") == corpus:  # a cross-corpus evaluation reads the model inputs
            for m in exp["models"]:
                feats.update(cfg["models"][m]["inputs"].values())
    return sorted(feats)


def model_features(cfg: dict, model: str) -> list[str]:
    m = cfg["models"][model]
    feats = set(m["inputs"].values())
    for extra in (m.get("train", {}).get("augment") or {}).values():
        feats.update(extra)
    return sorted(feats)


def export_dir(cfg: dict, name: str) -> str:
    return f"{cfg['results']}/export/{name}"


def export_runs(cfg: dict, name: str) -> list[str]:
    """The cross-validation runs of the exported model (they fix its epoch count)."""
    e = cfg["exports"][name]
    return [p for p in experiment_runs(cfg, e["experiment"]) if f"/{e['model']}/" in p]


def export_spec(cfg: dict, name: str) -> dict:
    e = cfg["exports"][name]
    exp = cfg["experiments"][e["experiment"]]
    c, p, m = exp["corpus"], exp["protocol"], e["model"]
    settings = {
        "name": name, "model_name": m, "model": cfg["models"][m], "corpus": c, "protocol": p,
        "protocol_spec": {**cfg["protocols"][p], "labels": label_spec(cfg, c, p)},
        "seed": int(exp["seeds"][0]), "device": cfg["device"], "runs": export_runs(cfg, name),
        "manifest": f"{corpus_dir(cfg, c)}/utterances.csv", "stores": model_stores(cfg, c, m),
        "augment_stores": augment_stores(cfg, c, m),
        "features": {s: cfg["features"][f] for s, f in cfg["models"][m]["inputs"].items()},
        "model_dir": export_dir(cfg, name),
    }
    return _spec("export", settings, registry("model")[cfg["models"][m]["arch"]])


def all_outputs(cfg: dict) -> list[str]:
    out = [export_dir(cfg, name) for name in cfg.get("exports") or {}]
    for exp in cfg["experiments"]:
        out += experiment_outputs(cfg, exp)
    out.append(f"{cfg['results']}/summary.md")
    return sorted(set(out))


# ---------------------------------------------------------------- job specs and digests

def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


STAGE_ENTRY = "ser_pipeline.__main__"


def stage_modules(command: str, *extra: str) -> list[str]:
    from ser_pipeline.cli import stage_module

    return [STAGE_ENTRY, stage_module(command), *extra]


def job_digest(command: str, settings, *extra_modules: str) -> str:
    """Digest of a job's settings and of all package code it can run."""
    return _sha({"settings": settings, "code": codedeps.code_digest(stage_modules(command, *extra_modules))})


def _spec(command: str, settings: dict, *extra_modules: str) -> dict:
    """A job's settings plus its digest and the entry modules the digest follows."""
    return {**settings, "modules": stage_modules(command, *extra_modules),
            "digest": job_digest(command, settings, *extra_modules)}


def demo_spec(cfg: dict, corpus: str) -> dict:
    c = cfg["corpora"][corpus]
    return _spec("demo-corpus", {"loader": c["loader"], "out": corpus_root(cfg, corpus), "params": c["demo"]},
                 registry("demo")[c["loader"]])


def prepare_spec(cfg: dict, corpus: str) -> dict:
    c = cfg["corpora"][corpus]
    extra = [registry("loader")[c["loader"]]] + ([registry("demo")[c["loader"]]] if "demo" in c else [])
    return _spec("prepare", {"corpus": corpus, "loader": c["loader"], "path": corpus_root(cfg, corpus),
                             "demo": c.get("demo"), "options": c.get("options", {}), "audit": c.get("audit", {})},
                 *extra)


def utterances_spec(cfg: dict, corpus: str) -> dict:
    """The label sets of every protocol used on ``corpus``: features cover their union.

    A corpus some cross-corpus experiment evaluates on keeps the rows its rule scores: the
    rule's label set (rule ``labels``), or every row (a corpus-specific rule decides itself).
    """
    specs = {json.dumps(label_spec(cfg, corpus, e["protocol"]), sort_keys=True)
             for e in cfg["experiments"].values() if e["corpus"] == corpus}
    keep_all = False
    for e in cfg["experiments"].values():
        if e.get("eval", {}).get("corpus") == corpus:
            rule = e["eval"]["rule"]
            if rule["name"] == "labels":
                specs.add(json.dumps({k: v for k, v in rule.items() if k != "name"}, sort_keys=True))
            else:
                keep_all = True
    return _spec("utterances", {"corpus": corpus, "label_specs": [json.loads(s) for s in sorted(specs)],
                                "all": keep_all})


def fold_spec(cfg: dict, corpus: str, protocol: str) -> dict:
    proto = {**cfg["protocols"][protocol], "labels": label_spec(cfg, corpus, protocol)}
    return _spec("folds", {"corpus": corpus, "protocol": protocol, "protocol_spec": proto,
                           "expected_folds": fold_count(cfg, corpus, protocol)})


def feature_spec(cfg: dict, feature: str) -> dict:
    f = cfg["features"][feature]
    return _spec("extract", {"feature": f}, registry("extractor")[f["extractor"]])


def store_path(cfg: dict, corpus: str, feature: str) -> str:
    return f"{cfg['results']}/features/{corpus}/{feature}.zarr"


def model_stores(cfg: dict, corpus: str, model: str) -> dict[str, str]:
    return {s: store_path(cfg, corpus, f) for s, f in cfg["models"][model]["inputs"].items()}


def augment_stores(cfg: dict, corpus: str, model: str) -> dict[str, list[str]]:
    aug = cfg["models"][model].get("train", {}).get("augment") or {}
    return {s: [store_path(cfg, corpus, f) for f in feats] for s, feats in aug.items()}


def train_spec(cfg: dict, corpus: str, protocol: str, model: str, size, seed: int, fold: str) -> dict:
    m = cfg["models"][model]
    r = cfg["results"]
    settings = {
        "model_name": model, "model": m, "corpus": corpus, "protocol": protocol, "fold": fold,
        "size": size if size == "full" else int(size), "seed": int(seed), "device": cfg["device"],
        "manifest": f"{corpus_dir(cfg, corpus)}/manifest.csv",
        "fold_file": f"{corpus_dir(cfg, corpus)}/folds/{protocol}.json",
        "stores": model_stores(cfg, corpus, model),
        "augment_stores": augment_stores(cfg, corpus, model),
        "features": {s: cfg["features"][f] for s, f in m["inputs"].items()},
        "model_dir": model_dir(r, corpus, protocol, model, size, seed, fold),
    }
    return _spec("train", settings, registry("model")[m["arch"]])


def crosscorpus_spec(cfg: dict, exp_name: str, model: str, seed: int, fold: str) -> dict:
    exp = cfg["experiments"][exp_name]
    ev = exp["eval"]
    settings = {
        "experiment": exp_name, "model_name": model, "fold": fold, "seed": int(seed),
        "train_corpus": exp["corpus"], "train_protocol": exp["protocol"], "eval_corpus": ev["corpus"],
        "rule": ev["rule"],
        "model_dir": model_dir(cfg["results"], exp["corpus"], exp["protocol"], model, exp["sizes"][0], seed, fold),
        "manifest": f"{corpus_dir(cfg, ev['corpus'])}/utterances.csv",
        "stores": model_stores(cfg, ev["corpus"], model),
    }
    extra = [registry("eval_rule")[ev["rule"]["name"]]] if ev["rule"]["name"] != "labels" else []
    return _spec("crosscorpus", settings, registry("model")[cfg["models"][model]["arch"]], *extra)


def _experiment(cfg: dict, exp_name: str) -> dict:
    """The experiment entry plus its model order: specs travel as JSON with sorted keys, and
    the order of `models` decides the table's rows and its default reference system."""
    exp = cfg["experiments"][exp_name]
    return {"name": exp_name, "experiment": exp, "model_order": list(exp["models"])}


def probe_spec(cfg: dict, exp_name: str) -> dict:
    dirs = experiment_model_dirs(cfg, exp_name)
    embeddings = {m: {f: f"{d}/embeddings.npz" for f, d in folds.items()} for m, folds in dirs.items()}
    return _spec("probe", {**_experiment(cfg, exp_name), "embeddings": embeddings})


def experiment_spec(cfg: dict, exp_name: str) -> dict:
    return _spec("table", _experiment(cfg, exp_name))


def plot_spec(cfg: dict, exp_name: str) -> dict:
    return _spec("plot", _experiment(cfg, exp_name))


def summary_spec(cfg: dict) -> dict:
    return _spec("summary", {"experiments": sorted(cfg["experiments"]),
                             "audits": {c: audit_report(cfg, c) for c in corpora_in_use(cfg)}})


def corpus_input_files(cfg: dict, corpus: str) -> list[str]:
    """The files a corpus's manifest is read from, so that editing one reruns the manifest.

    A demo corpus is represented by its done-marker; a CSV corpus by the CSV; other loaders
    by the label files they declare (``<module>.input_files(root)``), found without
    importing the loader when it declares none.
    """
    c = cfg["corpora"][corpus]
    if "demo" in c:
        return [f"{corpus_root(cfg, corpus)}/.done"]
    downloaded = [download_marker(cfg, corpus)] if "download" in c else []
    module = registry("loader")[c["loader"]]
    import importlib

    from ser_pipeline.errors import CorpusError

    declared = getattr(importlib.import_module(module), "input_files", None)
    try:
        found = sorted(str(p) for p in declared(c["path"], **(c.get("options") or {}))) if declared else []
    except CorpusError:
        found = []  # no corpus there (yet): the manifest job itself stops, naming the path and the reason
    return downloaded + found


DOWNLOAD_MARKER = ".ser_download.done"


def download_marker(cfg: dict, corpus: str) -> str:
    return f"{cfg['corpora'][corpus]['path'].rstrip('/')}/{DOWNLOAD_MARKER}"


def download_target_pattern(cfg: dict) -> str:
    """The regex of the ``{target}`` wildcard: the paths of corpora with a ``download:`` key."""
    targets = [re.escape(c["path"].rstrip("/")) for c in cfg["corpora"].values() if "download" in c]
    return "|".join(targets) or r"(?!x)x"


def download_spec(cfg: dict, target: str) -> dict:
    """The download job of the corpus whose ``path`` is ``target``."""
    for name, c in cfg["corpora"].items():
        if "download" in c and c["path"].rstrip("/") == target.rstrip("/"):
            return _spec("download", {"corpus": name, "loader": c["loader"], "target": c["path"],
                                      "options": c["download"] or {}}, registry("loader")[c["loader"]])
    raise ConfigError(f"no corpus with download: and path {target}")


# ---------------------------------------------------------------- scheduling

def gpus_requested(cfg: dict) -> bool:
    """Whether GPU-capable jobs should ask the scheduler for a GPU.

    ``device: cuda`` always does (a cluster's login node may have none while its GPU nodes
    do); ``auto`` does when this machine has an NVIDIA driver, so on a CPU-only machine the
    GPU-capable jobs are not serialised behind a ``gpu=1`` resource they will never use.
    """
    if cfg["device"] == "cpu":
        return False
    if cfg["device"].startswith("cuda"):
        return True
    return Path("/dev/nvidiactl").exists() or bool(os.environ.get("CUDA_VISIBLE_DEVICES"))


def feature_uses_gpu(cfg: dict, feature: str) -> int:
    """Resource request for an extraction job: 1 GPU unless it cannot use one."""
    f = cfg["features"][feature]
    cpu_only = f["extractor"] in CPU_ONLY_EXTRACTORS or (f.get("params") or {}).get("backend") == "pyaudioanalysis"
    return 0 if cpu_only or not gpus_requested(cfg) else 1


def half_the_cores(cores: int | None, cap: int) -> int:
    """Cores for a multi-threaded job: at most ``cap`` and at most half the machine's.

    A job that claims every core waits until all of them are free at once, and on a small
    machine one-core jobs never leave them so: with 2 cores, a 2-thread wav2vec extraction
    waited behind 1-thread training jobs until nearly all of them had run, and every job
    that needs its store ran at the end. Half the cores starts it next to them.
    ``cores`` None (not known, e.g. on a cluster): ``cap``.
    """
    return cap if cores is None else max(1, min(cap, int(cores) // 2))


def feature_threads(cfg: dict, feature: str, cores: int | None = None) -> int:
    """Cores for an extraction job: several only where the extractor can keep them busy."""
    if cfg["features"][feature]["extractor"] not in THREADED_EXTRACTORS:
        return 1
    return half_the_cores(cores, EXTRACT_THREADS)


def model_uses_gpu(cfg: dict, model: str) -> int:
    return 1 if cfg["models"][model].get("train", {}).get("gpu") and gpus_requested(cfg) else 0


def job_digests(cfg: dict) -> dict[str, str]:
    """{job id: digest} of every job the config plans (what decides its reruns).

    Job ids read like the outputs (``train:<run path>``); used by the rerun tests and by
    ``benchmarks/bench_dag.py``, not by the workflow itself.
    """
    out = {}
    for corpus in corpora_in_use(cfg):
        if "demo" in cfg["corpora"][corpus]:
            out[f"demo_corpus:{corpus}"] = demo_spec(cfg, corpus)["digest"]
        out[f"manifest:{corpus}"] = prepare_spec(cfg, corpus)["digest"]
        out[f"utterances:{corpus}"] = utterances_spec(cfg, corpus)["digest"]
        for feature in features_of_corpus(cfg, corpus):
            out[f"extract:{corpus}/{feature}"] = feature_spec(cfg, feature)["digest"]
    for name, exp in cfg["experiments"].items():
        c, p = exp["corpus"], exp["protocol"]
        out[f"folds:{c}/{p}"] = fold_spec(cfg, c, p)["digest"]
        folds = fold_names(cfg, c, p)
        for m in exp["models"]:
            for size in exp["sizes"]:
                for seed in exp["seeds"]:
                    for fold in folds:
                        out[f"train:{run_path(cfg['results'], c, p, m, size, seed, fold)}"] = \
                            train_spec(cfg, c, p, m, size, seed, fold)["digest"]
                        if exp.get("kind") == "cross_corpus" and size == exp["sizes"][0]:
                            out[f"crosscorpus:{crosscorpus_path(cfg['results'], name, m, seed, fold)}"] = \
                                crosscorpus_spec(cfg, name, m, seed, fold)["digest"]
        out[f"table:{name}"] = experiment_spec(cfg, name)["digest"]
        if exp.get("kind") == "scaling" or exp.get("confusion") or exp.get("kind") != "cross_corpus":
            out[f"plot:{name}"] = plot_spec(cfg, name)["digest"]
        if exp.get("probe"):
            out[f"probe:{name}"] = probe_spec(cfg, name)["digest"]
    out["summary"] = summary_spec(cfg)["digest"]
    return out

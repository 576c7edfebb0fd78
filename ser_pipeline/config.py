"""Reading and checking config.yaml, and everything the Snakefile derives from it.

Kept free of torch and the extractor modules so that building the job graph (which
imports this on every Snakemake invocation) stays fast. The Snakefile only wires; job
enumeration, output paths and rerun digests live here where they can be tested.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from ser_pipeline.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

# Source files whose text decides a model's / an extractor's output. Their digest goes in
# the rule's params, so editing one model reruns only that model's jobs (Snakemake's
# "code" trigger sees only the rule's own text, never an imported package).
ARCH_SOURCES = {
    "mean_pool": ["models/pooling.py"],
    "mean_max_pool": ["models/pooling.py"],
    "attention_pool": ["models/pooling.py"],
    "mlp_pool": ["models/pooling.py"],
    "bimodal_align": ["models/bimodal.py"],
    "ma_crnn": ["models/ma_crnn.py", "models/segments.py"],
}
TRAINING_SOURCES = ["training/loop.py", "training/data.py", "training/metrics.py", "models/masking.py"]
EXTRACTOR_SOURCES = {
    "lld": ["features/lld.py", "features/spectrogram.py"],
    "ma_spectrogram": ["features/spectrogram.py"],
    "log_spectrogram": ["features/spectrogram.py"],
    "fbank_pitch": ["features/fbank_pitch.py", "features/spectrogram.py"],
    "egemaps": ["features/egemaps.py"],
    "wav2vec1": ["features/wav2vec1.py"],
    "hf_ssl": ["features/hf_ssl.py"],
    "bert": ["features/text.py"],
}
DEFAULT_SESSIONS = {"iemocap": 5}


def load_config(path) -> dict:
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    return validate(cfg, source=str(path))


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
    check_references(cfg)
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


def check_references(cfg: dict) -> None:
    for name, corpus in cfg["corpora"].items():
        if "demo" not in corpus and "path" not in corpus:
            raise ConfigError(f"config key 'corpora.{name}': give 'path' (your corpus) or 'demo' (generate one)")
        if "demo" in corpus and corpus["loader"] != "iemocap":
            raise ConfigError(f"config key 'corpora.{name}.demo': the demo corpus is read by the iemocap loader")
        n_sessions(cfg, name)  # fails early, naming the key, when the fold count is unknown
    for name, model in cfg["models"].items():
        for stream, feat in model["inputs"].items():
            if feat not in cfg["features"]:
                raise ConfigError(f"config key 'models.{name}.inputs.{stream}': no feature named '{feat}'")
        if stream_set(model) not in ({"audio"}, {"audio", "text"}):
            raise ConfigError(f"config key 'models.{name}.inputs': streams must be audio, or audio and text")
    for name, exp in cfg["experiments"].items():
        for key, pool in (("corpus", "corpora"), ("protocol", "protocols")):
            if exp[key] not in cfg[pool]:
                raise ConfigError(f"config key 'experiments.{name}.{key}': no {pool} entry '{exp[key]}'")
        for model in exp["models"]:
            if model not in cfg["models"]:
                raise ConfigError(f"config key 'experiments.{name}.models': no model named '{model}'")


def stream_set(model: dict) -> set:
    return set(model["inputs"])


# ---------------------------------------------------------------- paths and jobs

def n_sessions(cfg: dict, corpus: str) -> int:
    c = cfg["corpora"][corpus]
    if "demo" in c:
        return int(c["demo"].get("sessions", 5))
    if "n_sessions" in c:
        return int(c["n_sessions"])
    if c["loader"] in DEFAULT_SESSIONS:
        return DEFAULT_SESSIONS[c["loader"]]
    raise ConfigError(f"config key 'corpora.{corpus}.n_sessions': needed for a {c['loader']} corpus "
                      f"so the job graph knows how many folds to fan out")


def fold_names(cfg: dict, corpus: str, protocol: str) -> list[str]:
    """Fold ids are known before the data is read, so a dry run shows every job."""
    k = n_sessions(cfg, corpus)
    spec = cfg["protocols"][protocol]
    if spec["scheme"] == "leave_one_speaker_out" and spec.get("swap_validation", True):
        k *= 2
    return [f"f{i:02d}" for i in range(1, k + 1)]


def run_path(results: str, corpus, protocol, model, size, seed, fold) -> str:
    return f"{results}/runs/{corpus}/{protocol}/{model}/n{size}/s{seed}/{fold}.json"


def experiment_runs(cfg: dict, exp_name: str) -> list[str]:
    exp = cfg["experiments"][exp_name]
    return [run_path(cfg["results"], exp["corpus"], exp["protocol"], m, size, seed, fold)
            for m in exp["models"] for size in exp["sizes"] for seed in exp["seeds"]
            for fold in fold_names(cfg, exp["corpus"], exp["protocol"])]


def experiment_outputs(cfg: dict, exp_name: str) -> list[str]:
    exp, r = cfg["experiments"][exp_name], cfg["results"]
    outs = [f"{r}/tables/{exp_name}.md", f"{r}/tables/{exp_name}.csv"]
    if exp.get("kind", "table") == "scaling":
        outs += [f"{r}/plots/{exp_name}.png", f"{r}/plots/{exp_name}.svg"]
    if exp.get("confusion"):
        outs += [f"{r}/plots/{exp_name}_confusion.png"]
    return outs


def all_outputs(cfg: dict) -> list[str]:
    out = []
    for exp in cfg["experiments"]:
        out += experiment_outputs(cfg, exp)
    corpora = {e["corpus"] for e in cfg["experiments"].values()}
    for corpus in corpora:  # every configured feature is cached for every corpus in use
        out += [f"{cfg['results']}/features/{corpus}/{f}.zarr" for f in cfg["features"]]
    out.append(f"{cfg['results']}/summary.md")
    return sorted(set(out))


# ---------------------------------------------------------------- digests

def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def source_digest(relpaths: list[str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(set(relpaths)):
        p = PACKAGE / rel
        h.update(rel.encode())
        h.update(p.read_bytes() if p.exists() else b"<missing>")
    return h.hexdigest()[:16]


def model_digest(cfg: dict, model: str) -> str:
    m = cfg["models"][model]
    return _sha({"model": m, "src": source_digest(ARCH_SOURCES[m["arch"]] + TRAINING_SOURCES)})


def feature_digest(cfg: dict, feature: str) -> str:
    f = cfg["features"][feature]
    srcs = list(EXTRACTOR_SOURCES[f["extractor"]]) + (["features/perturb.py"] if f.get("speed") else [])
    return _sha({"feature": f, "src": source_digest(srcs)})


CPU_ONLY = {"egemaps"}


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
    cpu_only = f["extractor"] in CPU_ONLY or (f.get("params") or {}).get("backend") == "pyaudioanalysis"
    return 0 if cpu_only or not gpus_requested(cfg) else 1


def model_uses_gpu(cfg: dict, model: str) -> int:
    return 1 if cfg["models"][model].get("train", {}).get("gpu") and gpus_requested(cfg) else 0


REPORTING_SOURCES = ["reporting/tables.py", "reporting/plots.py", "reporting/paper.py", "data/paper_results.yaml"]


def reporting_digest() -> str:
    """Tables and plots are cheap: any change to how they are drawn redraws them all."""
    return source_digest(REPORTING_SOURCES)

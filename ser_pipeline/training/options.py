"""Training options of a model's ``train:`` config entry: defaults, checks, one-line statement.

Every option that can change a number is listed here with its default, checked once (an
unknown or malformed key stops the job naming it), written in full to the result file and
stated in one line in the table header, so a table copied out of the report still says how
its models were trained.
"""
from __future__ import annotations

from ser_pipeline.errors import ConfigError

TRAIN_DEFAULTS = {
    "epochs": 30,
    "batch_size": 16,           # an int, or a list: chosen on the validation part (never test)
    "optimizer": "adam",        # adam | sgd
    "lr": 1.0e-4,
    "momentum": 0.9,            # sgd only
    "weight_decay": 0.0,
    "lr_schedule": "constant",  # constant | poly (polynomial decay to 0 over all steps)
    "lr_power": 1.0,            # poly only
    "normalize": "zscore",      # zscore (training-part statistics) | speaker (each speaker's own) | none
    "class_weights": False,     # loss weights inversely proportional to class frequency (training part)
    "length_weights": False,    # loss weights inversely proportional to utterance length (Ma et al.)
    "input_mode": "whole",      # whole utterances, or fixed-length segments (Satt et al.)
    "segment_seconds": 3.0,
    "crop_seconds": None,       # training only: a random crop of this length per epoch
    "fixed_seconds": None,      # every part: the middle N seconds, shorter ones cycle-repeated (Li et al.)
    "augment": {},              # {stream: [feature, ...]}: extra training copies (e.g. speed-perturbed)
    "reference": None,          # {label, column, eval_first_n}: a reference utterance per speaker
    "select_on_val": False,     # pick the epoch by validation UA (needs a validation part)
    "epochs_from": "fixed",     # fixed | inner_val: epoch count chosen on a group carved from training
    "inner_val_group": "session",  # with inner_val: the manifest column whose group is carved out
    "patience": None,           # with select_on_val: stop after this many epochs without improvement
    "gpu": False,               # ask the scheduler for a GPU (resources: gpu=1)
    "max_frames": None,         # crop frames per utterance at training time (None: keep all)
    "pool_frames": {},          # {stream: k}: average every k consecutive frames (a CPU-budget knob)
    "converge_tolerance": 0.01,  # flag a run whose training loss still fell by more than this share
    "save_embeddings": False,   # write the validation + test embeddings (models with embed())
}
REFERENCE_DEFAULTS = {"label": "neu", "column": "label", "eval_first_n": 0}
CHOICES = {"optimizer": ("adam", "sgd"), "lr_schedule": ("constant", "poly"), "epochs_from": ("fixed", "inner_val"),
           "normalize": ("zscore", "speaker", "none"), "input_mode": ("whole", "segments")}


def train_options(train: dict | None, where: str = "models.*.train") -> dict:
    """Defaults overlaid with ``train``; unknown keys and bad values raise, naming the key."""
    train = dict(train or {})
    unknown = set(train) - set(TRAIN_DEFAULTS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(TRAIN_DEFAULTS)}")
    opts = {**TRAIN_DEFAULTS, **train}
    for key, allowed in CHOICES.items():
        if opts[key] is None and key == "normalize":
            opts[key] = "none"
        if opts[key] not in allowed:
            raise ConfigError(f"{where}.{key}: '{opts[key]}' is not one of {list(allowed)}")
    sizes = opts["batch_size"] if isinstance(opts["batch_size"], list) else [opts["batch_size"]]
    if not sizes or not all(isinstance(b, int) and b >= 1 for b in sizes):
        raise ConfigError(f"{where}.batch_size: a positive int or a list of them, got {opts['batch_size']!r}")
    if isinstance(opts["batch_size"], list) and len(sizes) == 1:
        opts["batch_size"] = sizes[0]
    if opts["epochs_from"] == "inner_val" and opts["select_on_val"]:
        raise ConfigError(f"{where}.epochs_from: inner_val is for protocols without a validation part; "
                          f"with one, use select_on_val")
    if opts["patience"] is not None and not (opts["select_on_val"] or opts["epochs_from"] == "inner_val"):
        raise ConfigError(f"{where}.patience: early stopping needs select_on_val: true")
    if opts["crop_seconds"] and opts["input_mode"] == "segments":
        raise ConfigError(f"{where}.crop_seconds: not with input_mode: segments (segments are the crop)")
    if opts["reference"] is not None:
        ref = dict(opts["reference"])
        bad = set(ref) - set(REFERENCE_DEFAULTS)
        if bad:
            raise ConfigError(f"{where}.reference: unknown keys {sorted(bad)}; allowed: {sorted(REFERENCE_DEFAULTS)}")
        opts["reference"] = {**REFERENCE_DEFAULTS, **ref}
    return opts


def describe(opts: dict, kind: str = "neural") -> str:
    """The options in one line, as a table header states them.

    A classical model (``kind="classical"``) has no optimiser, batches or epochs: stating
    the neural defaults for it would describe training that never happened.
    """
    if kind == "classical":
        parts = ["scikit-learn estimator (no optimiser settings, batches or epochs; its hyperparameter choice "
                 "is under Model selection)"]
    else:
        opt = opts["optimizer"]
        parts = [f"{opt.upper() if opt == 'sgd' else 'Adam'} lr {opts['lr']:g}"
                 + (f" momentum {opts['momentum']:g}" if opt == "sgd" else "")
                 + (f" weight decay {opts['weight_decay']:g}" if opts["weight_decay"] else "")]
        if opts["lr_schedule"] == "poly":
            parts.append(f"polynomial lr decay (power {opts['lr_power']:g})")
        bs = opts["batch_size"]
        parts.append(f"batch size chosen from {bs} on validation UA" if isinstance(bs, list) else f"batch {bs}")
        parts.append(f"{opts['epochs']} epochs")
        if opts["select_on_val"]:
            parts.append("epoch chosen on validation UA"
                         + (f" (patience {opts['patience']})" if opts["patience"] else ""))
        if opts["epochs_from"] == "inner_val":
            parts.append(f"epoch count (up to {opts['epochs']}) chosen on validation UA of one "
                         f"`{opts['inner_val_group']}` carved from the training part, then retrained on the whole "
                         f"training part" + (f" (patience {opts['patience']})" if opts["patience"] else ""))
    parts.append({"zscore": "z-score with training-part statistics", "speaker": "z-score per speaker "
                  "(each speaker's own statistics, test speakers included)", "none": "no normalisation"}
                 [opts["normalize"]])
    if opts["class_weights"]:
        parts.append("loss weighted by inverse class frequency")
    if opts["length_weights"]:
        parts.append("loss weighted by inverse length")
    if opts["input_mode"] == "segments":
        parts.append(f"{opts['segment_seconds']:g} s segments, posteriors averaged per utterance")
    if opts["crop_seconds"]:
        parts.append(f"random {opts['crop_seconds']:g} s training crops (whole utterances at validation/test)")
    if opts["fixed_seconds"]:
        parts.append(f"middle {opts['fixed_seconds']:g} s of every utterance, shorter ones cycle-repeated")
    if opts["augment"]:
        parts.append("extra training copies from " + ", ".join(f for fs in opts["augment"].values() for f in fs))
    if opts["max_frames"]:
        parts.append(f"first {opts['max_frames']} frames")
    if opts["pool_frames"]:
        parts.append(", ".join(f"every {k} {s} frames averaged into one" for s, k in opts["pool_frames"].items()))
    if opts["reference"]:
        parts.append("reference: " + reference_rule(opts["reference"]))
    return "; ".join(parts)


def reference_rule(ref: dict) -> str:
    return (f"an utterance of the same speaker labelled `{ref['label']}` in column `{ref['column']}`: in training "
            f"a random one other than the utterance itself, drawn per step; at validation and test the first "
            f"in corpus order (manifest order)")

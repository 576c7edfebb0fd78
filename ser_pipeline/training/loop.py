"""One training job: (model, fold, data size, seed) -> a result JSON.

The protocol follows the paper behind each model and is recorded in the result: Boigne
et al. train a fixed number of epochs with no early stopping and score the held-out
session; Ma et al. hold out a validation speaker, which we use to pick the epoch
(``select_on_val``). Nothing here reads the test part before the final evaluation.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from ser_pipeline.errors import ConfigError
from ser_pipeline.manifest import read_manifest
from ser_pipeline.protocols.folds import read_fold_file, subsample_per_class
from ser_pipeline.training.data import Streams, apply_zscore, length_buckets, make_batch, zscore_stats
from ser_pipeline.training.metrics import DEFINITIONS, scores

TRAIN_DEFAULTS = {
    "epochs": 30,
    "batch_size": 16,
    "lr": 1.0e-4,
    "weight_decay": 0.0,
    "normalize": "zscore",      # zscore with training-part statistics, or none
    "class_weights": False,     # loss weights inversely proportional to class frequency
    "length_weights": False,    # loss weights inversely proportional to utterance length (Ma et al.)
    "input_mode": "whole",      # whole utterances, or fixed-length segments (Satt et al.)
    "segment_seconds": 3.0,
    "select_on_val": False,     # pick the epoch by validation UA (needs a validation part)
    "gpu": False,               # ask the scheduler for a GPU (resources: gpu=1)
    "max_frames": None,         # crop frames per utterance at training time (None: keep all)
    "pool_frames": {},          # {stream: k}: average every k consecutive frames (a CPU-budget knob)
}


def train_spec_defaults(train: dict | None) -> dict:
    train = dict(train or {})
    unknown = set(train) - set(TRAIN_DEFAULTS)
    if unknown:
        raise ConfigError(f"models.*.train: unknown keys {sorted(unknown)}; allowed: {sorted(TRAIN_DEFAULTS)}")
    return {**TRAIN_DEFAULTS, **train}


def average_frames(a: np.ndarray, k: int) -> np.ndarray:
    """Mean of every k consecutive frames; the last, shorter window averages what it has."""
    if k <= 1 or len(a) == 0:
        return a
    n = len(a)
    full = (n // k) * k
    out = a[:full].reshape(-1, k, a.shape[1]).mean(axis=1)
    if full < n:
        out = np.concatenate([out, a[full:].mean(axis=0, keepdims=True)])
    return out.astype(np.float32, copy=False)


def _segment(streams: dict[str, list[np.ndarray]], labels: np.ndarray, frames: int):
    from ser_pipeline.models.segments import split_into_segments

    if set(streams) != {"audio"}:
        raise ConfigError("input_mode: segments supports a single audio stream only")
    segs, seg_labels, owner = [], [], []
    for i, a in enumerate(streams["audio"]):
        pieces = split_into_segments(a, frames)
        pieces = pieces[0] if isinstance(pieces, tuple) else pieces
        segs.extend(pieces)
        seg_labels.extend([labels[i]] * len(pieces))
        owner.extend([i] * len(pieces))
    return {"audio": segs}, np.array(seg_labels), np.array(owner)


def _predict(model, streams, device, batch_size=32) -> np.ndarray:
    model.eval()
    n = len(next(iter(streams.values())))
    chunks = []
    order = length_buckets([len(a) for a in next(iter(streams.values()))], batch_size, None)
    with torch.no_grad():
        for idx in order:
            probs = torch.softmax(model(make_batch(streams, idx, device)).float(), dim=-1).cpu().numpy()
            chunks.append((idx, probs))
    out = np.zeros((n, chunks[0][1].shape[1]), dtype=np.float32)
    for idx, p in chunks:
        out[idx] = p
    return out


def _evaluate(model, streams, labels, classes, device, segments_frames=None):
    if segments_frames:
        from ser_pipeline.models.segments import average_segment_posteriors

        seg_streams, _, owner = _segment(streams, labels, segments_frames)
        post = average_segment_posteriors(_predict(model, seg_streams, device), owner)
    else:
        post = _predict(model, streams, device)
    return scores(labels, post.argmax(axis=1), classes)


def run_training(spec: dict) -> dict:
    """spec keys: model_name, model (config entry), classes, fold_file, fold, manifest, stores,
    size, seed, device, protocol."""
    from ser_pipeline.models import build_model

    t0 = time.time()
    model_cfg = spec["model"]
    train_cfg = train_spec_defaults(model_cfg.get("train"))
    device, seed = spec["device"], int(spec["seed"])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    classes = list(spec["classes"])
    folds = read_fold_file(spec["fold_file"])
    fold = next((f for f in folds["folds"] if f["name"] == spec["fold"]), None)
    if fold is None:
        raise ConfigError(f"{spec['fold_file']}: no fold named {spec['fold']}")
    manifest = read_manifest(spec["manifest"]).set_index("utt_id")
    label_of = manifest["label"].to_dict()
    unknown = {label_of[u] for u in fold["train"] + fold["test"]} - set(classes)
    if unknown:
        raise ConfigError(f"labels {sorted(unknown)} in {spec['manifest']} are not in corpora.*.classes {classes}")

    train_ids = subsample_per_class(fold["train"], [label_of[u] for u in fold["train"]], spec["size"], seed)
    parts = {"train": train_ids, "val": fold["val"], "test": fold["test"]}
    # One bulk read per store for the whole fold, then split: the parts interleave in the store.
    every = Streams(spec["stores"], [u for ids in parts.values() for u in ids])
    bounds = np.cumsum([0] + [len(ids) for ids in parts.values()])
    data = {p: every.subset(range(bounds[i], bounds[i + 1])) for i, (p, ids) in enumerate(parts.items()) if ids}
    labels = {p: np.array([classes.index(label_of[u]) for u in ids]) for p, ids in parts.items() if ids}

    arrays = {p: dict(d.data) for p, d in data.items()}
    if train_cfg["max_frames"]:
        mf = int(train_cfg["max_frames"])
        arrays = {p: {s: [a[:mf] for a in v] for s, v in d.items()} for p, d in arrays.items()}
    for stream, k in (train_cfg["pool_frames"] or {}).items():
        if stream not in spec["stores"]:
            raise ConfigError(f"models.{spec['model_name']}.train.pool_frames: no input stream '{stream}'")
        arrays = {p: {**d, stream: [average_frames(a, int(k)) for a in d[stream]]} for p, d in arrays.items()}
    if train_cfg["normalize"] == "zscore":
        for stream in spec["stores"]:
            stats = zscore_stats(arrays["train"][stream])
            for p in arrays:
                arrays[p][stream] = apply_zscore(arrays[p][stream], stats)
    elif train_cfg["normalize"] not in ("none", None):
        raise ConfigError(f"models.{spec['model_name']}.train.normalize: '{train_cfg['normalize']}' is not zscore/none")

    seg_frames = None
    train_streams, train_labels = arrays["train"], labels["train"]
    if train_cfg["input_mode"] == "segments":
        rate = data["train"].meta["audio"]["frame_rate"] or 100.0
        seg_frames = int(round(train_cfg["segment_seconds"] * rate))
        train_streams, train_labels, _ = _segment(train_streams, train_labels, seg_frames)
    elif train_cfg["input_mode"] != "whole":
        raise ConfigError(f"models.{spec['model_name']}.train.input_mode must be whole or segments")

    input_dims = {s: arrays["train"][s][0].shape[1] for s in spec["stores"]}
    model = build_model(model_cfg["arch"], input_dims, len(classes), model_cfg.get("hparams") or {}).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(train_cfg["lr"]), weight_decay=float(train_cfg["weight_decay"]))

    n = len(train_labels)
    weights = np.ones(n, dtype=np.float32)
    if train_cfg["class_weights"]:
        counts = np.bincount(train_labels, minlength=len(classes)).astype(np.float32)
        weights *= (n / (len(classes) * np.maximum(counts, 1)))[train_labels]
    if train_cfg["length_weights"]:
        lengths = np.array([len(a) for a in next(iter(train_streams.values()))], dtype=np.float32)
        weights *= lengths.mean() / np.maximum(lengths, 1)
    weights = weights / weights.mean()
    w_t = torch.from_numpy(weights.astype(np.float32))
    y_t = torch.from_numpy(train_labels.astype(np.int64))

    history, best = [], None
    lengths = [len(a) for a in next(iter(train_streams.values()))]
    for epoch in range(1, int(train_cfg["epochs"]) + 1):
        model.train()
        total = 0.0
        for idx in length_buckets(lengths, int(train_cfg["batch_size"]), rng):
            batch = make_batch(train_streams, idx, device)
            loss = (F.cross_entropy(model(batch), y_t[idx].to(device), reduction="none") * w_t[idx].to(device)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        entry = {"epoch": epoch, "train_loss": total / n}
        if "val" in arrays:
            val = _evaluate(model, arrays["val"], labels["val"], classes, device, seg_frames)
            entry["val_UA"], entry["val_WA"] = val["UA"], val["WA"]
            if train_cfg["select_on_val"] and (best is None or val["UA"] > best[0]):
                best = (val["UA"], epoch, copy.deepcopy(model.state_dict()))
        history.append(entry)
    selected = int(train_cfg["epochs"])
    if train_cfg["select_on_val"]:
        if best is None:
            raise ConfigError(f"models.{spec['model_name']}.train.select_on_val needs a protocol with a validation part")
        selected = best[1]
        model.load_state_dict(best[2])

    result = {
        "model": spec["model_name"],
        "arch": model_cfg["arch"],
        "corpus": spec["corpus"],
        "protocol": spec["protocol"],
        "protocol_description": folds["description"],
        "fold": fold["name"],
        "test_session": fold.get("test_session"),
        "test_speaker": fold.get("test_speaker"),
        "size_per_class": spec["size"],
        "seed": seed,
        "n_train": len(train_ids),
        "n_train_per_class": {c: int((labels["train"] == i).sum()) for i, c in enumerate(classes)},
        "n_val": len(parts["val"]),
        "n_test": len(parts["test"]),
        "metrics": _evaluate(model, arrays["test"], labels["test"], classes, device, seg_frames),
        "metric_definitions": DEFINITIONS,
        "selected_epoch": selected,
        "epoch_selection": "best validation UA" if train_cfg["select_on_val"] else "fixed epochs, no early stopping",
        "history": history,
        "train": train_cfg,
        "hparams": model_cfg.get("hparams") or {},
        "features": {s: d for s, d in data["train"].meta.items()},
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "device": device,
        "wall_seconds": round(time.time() - t0, 2),
        "digest": spec.get("digest"),
    }
    return result

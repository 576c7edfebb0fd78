"""A fold's data as the models see it: parts, labels, speakers and transformed frames.

Everything a training job does to its inputs before the model runs happens here, once,
for every kind of model: labels from the fold file (the protocol's mapping), the per-class
subsample of the training part, one bulk read per store, frame pooling and cropping,
normalisation, speed-perturbed training copies, segments and reference utterances. The
test part is read only for the final evaluation; nothing fitted here (normalisation
statistics included) ever sees it, except per-speaker normalisation, which by definition
uses each speaker's own (unlabelled) frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ser_pipeline.errors import ConfigError, CorpusError
from ser_pipeline.manifest import read_manifest
from ser_pipeline.protocols.folds import clamped_classes, read_fold_file, subsample_per_class
from ser_pipeline.store import FeatureStore
from ser_pipeline.training.data import (apply_zscore, first_of_label, middle_cycle, speaker_zscore,
                                        zscore_stats)


@dataclass
class Part:
    """One part (train, val, test) of a fold."""

    ids: list[str]
    y: np.ndarray
    speakers: list[str]
    streams: dict[str, list[np.ndarray]]
    raw: list[str] = field(default_factory=list)  # the reference rule's label column

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> list[int]:
        return [len(a) for a in next(iter(self.streams.values()))]

    def extend(self, other: "Part") -> "Part":
        return Part(self.ids + other.ids, np.concatenate([self.y, other.y]), self.speakers + other.speakers,
                    {s: self.streams[s] + other.streams[s] for s in self.streams}, self.raw + other.raw)


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


@dataclass
class FoldData:
    classes: list[str]
    labels: dict
    fold: dict
    fold_doc: dict
    parts: dict[str, Part]
    meta: dict[str, dict]
    frame_rates: dict[str, float]  # of the frames the model sees (after train.pool_frames)
    train_speakers: list[str]
    norm: dict
    augmented: int = 0
    clamped: dict = field(default_factory=dict)
    order: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)  # {column: {utt_id: value}} for inner validation

    def carve(self, column: str) -> tuple["FoldData", str]:
        """A copy whose training part loses one ``column`` group, which becomes its validation part.

        The group is the first training group after the test part's in sorted, cyclic order,
        so every fold carves a different one and the choice never looks at labels or scores.
        Normalisation statistics stay those of the whole training part (unlabelled frames).
        """
        of = self.groups.get(column)
        if of is None:
            raise ConfigError(f"train.inner_val_group: the manifest has no column '{column}'")
        train = self.parts["train"]
        groups = sorted({of[u] for u in train.ids})
        if len(groups) < 2:
            raise ConfigError(f"train.epochs_from: inner_val needs at least 2 '{column}' groups in the training "
                              f"part, it has {groups}")
        test_groups = sorted({of[u] for u in self.parts["test"].ids})
        after = [g for g in groups if test_groups and g > test_groups[0]]
        carved = (after or groups)[0]
        keep = [i for i, u in enumerate(train.ids) if of[u] != carved]
        held = [i for i, u in enumerate(train.ids) if of[u] == carved and i < len(train) - self.augmented]

        def pick(idx):
            return Part([train.ids[i] for i in idx], train.y[idx], [train.speakers[i] for i in idx],
                        {s: [v[i] for i in idx] for s, v in train.streams.items()},
                        [train.raw[i] for i in idx] if train.raw else [])

        inner = FoldData(**{**self.__dict__, "parts": {"train": pick(keep), "val": pick(held)},
                            "augmented": self.augmented - sum(1 for i in keep if i >= len(train) - self.augmented),
                            "train_speakers": sorted({train.speakers[i] for i in keep})})
        return inner, carved

    def speaker_index(self, speakers: list[str]) -> np.ndarray:
        index = {s: i for i, s in enumerate(self.train_speakers)}
        return np.array([index.get(s, -1) for s in speakers], dtype=np.int64)


def _load(stores: dict[str, str], ids: list[str]) -> tuple[dict[str, list[np.ndarray]], dict[str, dict]]:
    data, meta = {}, {}
    for stream, path in stores.items():
        st = FeatureStore(path)
        data[stream] = st.load(ids)
        meta[stream] = {"store": str(path), "extractor": st.attrs.get("extractor"),
                        "frame_rate": st.attrs.get("frame_rate"), "info": st.attrs.get("info", {}),
                        "content_digest": getattr(st, "content_digest", None) or st.attrs.get("content_digest")}
    return data, meta


def transform(streams: dict[str, list[np.ndarray]], opts: dict, frame_rates: dict[str, float]) -> dict:
    """Per-utterance transforms that apply to every part alike (before normalisation)."""
    out = dict(streams)
    if opts["max_frames"]:
        mf = int(opts["max_frames"])
        out = {s: [a[:mf] for a in v] for s, v in out.items()}
    for stream, k in (opts["pool_frames"] or {}).items():
        if stream not in out:
            raise ConfigError(f"train.pool_frames: no input stream '{stream}'")
        out[stream] = [average_frames(a, int(k)) for a in out[stream]]
    if opts["fixed_seconds"]:
        rates = model_frame_rates(frame_rates, opts)
        for stream, arrays in out.items():
            rate = _rate(rates, stream, "fixed_seconds")
            out[stream] = [middle_cycle(a, max(1, int(round(opts["fixed_seconds"] * rate)))) for a in arrays]
    return out


def model_frame_rates(frame_rates: dict, opts: dict) -> dict:
    """Frame rates after ``train.pool_frames``: what a length in seconds (crops, segments)
    must be converted with once frames are averaged."""
    pool = opts["pool_frames"] or {}
    return {s: (r / pool.get(s, 1) if r else r) for s, r in frame_rates.items()}


def _rate(frame_rates: dict, stream: str, key: str) -> float:
    rate = frame_rates.get(stream)
    if not rate:
        raise ConfigError(f"train.{key}: stream '{stream}' has no frame rate (one vector per utterance)")
    return float(rate)


def load_fold(spec: dict, opts: dict, seed: int, need_reference: bool) -> FoldData:
    """Read, subsample, transform and normalise one fold's data for training."""
    doc = read_fold_file(spec["fold_file"])
    fold = next((f for f in doc["folds"] if f["name"] == spec["fold"]), None)
    if fold is None:
        raise ConfigError(f"{spec['fold_file']}: no fold named {spec['fold']}")
    classes = list(doc["labels"]["classes"])
    label_of = doc["label_of"]
    manifest = read_manifest(spec["manifest"]).set_index("utt_id")
    missing = [u for u in fold["train"] + fold["val"] + fold["test"] if u not in manifest.index]
    if missing:
        raise CorpusError(f"{spec['fold_file']}: {len(missing)} utterances are not in {spec['manifest']} "
                          f"(e.g. {missing[:3]}): the fold file is stale; delete it and rerun")
    speaker_of = manifest["speaker"].to_dict()
    order = {u: i for i, u in enumerate(manifest.index)}
    ref = opts["reference"]
    if need_reference and ref["column"] not in manifest.columns:
        raise ConfigError(f"train.reference.column: the manifest has no column '{ref['column']}'")
    raw_of = manifest[ref["column"]].to_dict() if need_reference else {}

    train_ids = subsample_per_class(fold["train"], [label_of[u] for u in fold["train"]], spec["size"], seed)
    ids = {"train": train_ids, "val": fold["val"], "test": fold["test"]}
    every = [u for p in ids.values() for u in p]
    data, meta = _load(spec["stores"], every)
    frame_rates = {s: m["frame_rate"] for s, m in meta.items()}
    data = transform(data, opts, frame_rates)
    bounds = np.cumsum([0] + [len(v) for v in ids.values()])
    parts = {}
    for i, (name, part_ids) in enumerate(ids.items()):
        if not part_ids:
            continue
        sl = slice(bounds[i], bounds[i + 1])
        parts[name] = Part(list(part_ids), np.array([classes.index(label_of[u]) for u in part_ids], dtype=np.int64),
                           [speaker_of[u] for u in part_ids], {s: v[sl] for s, v in data.items()},
                           [raw_of[u] for u in part_ids] if need_reference else [])

    augmented = 0
    if opts["augment"]:
        extra = _augment(spec, opts, parts["train"], frame_rates)
        augmented = len(extra)
    norm = _normalise(parts, opts, spec, extra if opts["augment"] else None)
    if opts["augment"]:
        parts["train"] = parts["train"].extend(extra)
    groups = {}
    if opts["epochs_from"] == "inner_val":
        col = opts["inner_val_group"]
        if col not in manifest.columns:
            raise ConfigError(f"train.inner_val_group: the manifest has no column '{col}'")
        groups[col] = manifest[col].to_dict()
    return FoldData(classes=classes, labels=doc["labels"], fold=fold, fold_doc=doc, parts=parts, meta=meta,
                    frame_rates=model_frame_rates(frame_rates, opts),
                    train_speakers=sorted(set(parts["train"].speakers)), norm=norm,
                    augmented=augmented, clamped=clamped_classes([label_of[u] for u in fold["train"]], spec["size"]),
                    order=order, groups=groups)


def _augment(spec: dict, opts: dict, train: Part, frame_rates: dict) -> Part:
    """Training copies read from other stores of the same utterances (speed perturbation)."""
    stores = spec.get("augment_stores") or {}
    if set(stores) != set(opts["augment"]):
        raise ConfigError("train.augment: the job spec's augment_stores do not match the model's config")
    copies = [len(v) for v in stores.values()]
    if len(set(copies)) != 1 or set(stores) != set(train.streams):
        raise ConfigError(f"train.augment: give the same number of copies for every input stream "
                          f"{sorted(train.streams)}, got {dict(zip(stores, copies))}")
    out = None
    for k in range(copies[0]):
        data, _ = _load({s: paths[k] for s, paths in stores.items()}, train.ids)
        part = Part(list(train.ids), train.y.copy(), list(train.speakers), transform(data, opts, frame_rates),
                    list(train.raw))
        out = part if out is None else out.extend(part)
    return out


def _normalise(parts: dict[str, Part], opts: dict, spec: dict, extra: Part | None) -> dict:
    """Normalise in place; return the statistics a saved model needs to normalise new input."""
    mode = opts["normalize"]
    if mode == "none":
        return {"mode": "none"}
    if mode == "speaker":
        for p in list(parts.values()) + ([extra] if extra else []):
            for s in p.streams:
                p.streams[s] = speaker_zscore(p.streams[s], p.speakers)
        return {"mode": "speaker"}
    stats = {}
    for stream in spec["stores"]:
        stats[stream] = zscore_stats(parts["train"].streams[stream])
        for p in list(parts.values()) + ([extra] if extra else []):
            p.streams[stream] = apply_zscore(p.streams[stream], stats[stream])
    return {"mode": "zscore", "stats": stats}


def reference_plan(data: FoldData, opts: dict) -> dict:
    """Which reference utterance each part's speakers get (validation/test: fixed)."""
    ref = opts["reference"]
    plan = {}
    for name in ("val", "test"):
        if name not in data.parts:
            continue
        p = data.parts[name]
        chosen = first_of_label(p.ids, p.speakers, p.raw, ref["label"], data.order)
        lacking = sorted(set(p.speakers) - set(chosen))
        if lacking:
            raise CorpusError(f"train.reference: speakers {lacking} of the {name} part have no utterance "
                              f"labelled '{ref['label']}' in column '{ref['column']}'")
        plan[name] = chosen
    train = data.parts["train"]
    pools: dict[str, list[int]] = {}
    for i, (s, lab) in enumerate(zip(train.speakers, train.raw)):
        if lab == ref["label"]:
            pools.setdefault(s, []).append(i)
    lacking = sorted(s for s in set(train.speakers) if len({train.ids[i] for i in pools.get(s, [])}) < 2)
    if lacking:
        raise CorpusError(f"train.reference: training speakers {lacking} have fewer than 2 utterances labelled "
                          f"'{ref['label']}', so a reference other than the utterance itself cannot be drawn")
    plan["train_pools"] = pools
    return plan

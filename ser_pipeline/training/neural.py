"""Fitting a neural model: one loop for every architecture.

The loop knows nothing of model families. It builds batches that carry what the model
declares it needs, gives each of the model's parameter groups an optimiser and a learning
rate schedule, and lets the model take its own optimisation step
(:meth:`ser_pipeline.models.SerModel.training_step`): plain cross-entropy, a multi-task
loss, a gradient-reversal adversary or alternating adversarial steps all pass through the
same code. Epochs are selected on the validation part only; a non-finite loss stops the
job instead of producing a table row from a diverged model.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ser_pipeline.errors import SerError
from ser_pipeline.training.data import length_buckets, make_batch, pad_batch, random_crop
from ser_pipeline.training.fold_data import FoldData, Part, _rate
from ser_pipeline.training.metrics import scores


class TrainingError(SerError):
    """Training diverged or cannot proceed (a non-finite loss, a bad optimiser group)."""


def _segment(part: Part, frames: int):
    """Fixed-length segments (Satt et al.): each keeps its utterance's label and speaker."""
    from ser_pipeline.models.segments import split_into_segments

    if len(part.streams) != 1:
        raise SerError("input_mode: segments supports a single input stream only")
    stream = next(iter(part.streams))
    segs, owner = [], []
    for i, a in enumerate(part.streams[stream]):
        pieces, _ = split_into_segments(a, frames)
        segs.extend(pieces)
        owner.extend([i] * len(pieces))
    owner = np.array(owner, dtype=np.int64)
    seg = Part([part.ids[i] for i in owner], part.y[owner], [part.speakers[i] for i in owner], {stream: segs},
               [part.raw[i] for i in owner] if part.raw else [])
    return seg, owner


class Batcher:
    """Turns index lists into the batch dicts of the model contract (models/__init__.py)."""

    def __init__(self, model, data: FoldData, device: str, weights: np.ndarray | None = None,
                 references: dict | None = None):
        self.needs = getattr(model, "needs", frozenset())
        self.data, self.device = data, device
        self.weights = weights
        self.references = references or {}

    def __call__(self, part: Part, idx: list[int], refs: list[np.ndarray] | None = None) -> dict:
        batch = make_batch(part.streams, idx, self.device)
        batch["label"] = torch.from_numpy(part.y[idx]).to(self.device)
        w = self.weights[idx] if self.weights is not None else np.ones(len(idx), dtype=np.float32)
        batch["weight"] = torch.from_numpy(np.asarray(w, dtype=np.float32)).to(self.device)
        if "speaker" in self.needs:
            batch["speaker"] = torch.from_numpy(self.data.speaker_index([part.speakers[i] for i in idx])).to(self.device)
        if "utt_id" in self.needs:
            batch["utt_id"] = [part.ids[i] for i in idx]
        if refs is not None:
            for stream in part.streams:
                x, m = pad_batch(refs[stream])
                batch[f"ref_{stream}"], batch[f"ref_{stream}_mask"] = x.to(self.device), m.to(self.device)
        return batch


def _fixed_refs(data: FoldData, part_name: str, part: Part, chosen: dict[str, str], idx: list[int]) -> dict:
    """Reference frames for validation/test items: their speaker's fixed reference utterance."""
    source = data.parts[part_name]
    where = {u: i for i, u in enumerate(source.ids)}
    return {s: [source.streams[s][where[chosen[part.speakers[i]]]] for i in idx] for s in part.streams}


def predict(model, part: Part, batcher: Batcher, data: FoldData | None = None, part_name: str | None = None,
            chosen: dict | None = None, batch_size: int = 32) -> np.ndarray:
    """Class probabilities [N, C] for every item of ``part`` (eval mode, no gradients)."""
    model.eval()
    out = None
    with torch.no_grad():
        for idx in length_buckets(part.lengths(), batch_size, None):
            refs = _fixed_refs(data, part_name, part, chosen, idx) if chosen is not None else None
            probs = torch.softmax(model(batcher(part, idx, refs)).float(), dim=-1).cpu().numpy()
            if out is None:
                out = np.zeros((len(part), probs.shape[1]), dtype=np.float32)
            out[idx] = probs
    return out


def embed(model, part: Part, batcher: Batcher, data: FoldData, part_name: str, chosen: dict | None,
          batch_size: int = 32) -> np.ndarray:
    model.eval()
    out = None
    with torch.no_grad():
        for idx in length_buckets(part.lengths(), batch_size, None):
            refs = _fixed_refs(data, part_name, part, chosen, idx) if chosen is not None else None
            e = model.embed(batcher(part, idx, refs)).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(part), e.shape[1]), dtype=np.float32)
            out[idx] = e
    return out


class Evaluator:
    """Scores a part, through segments and posterior averaging where the model uses them."""

    def __init__(self, data: FoldData, batcher: Batcher, seg_frames: int | None, plan: dict | None):
        self.data, self.batcher, self.seg_frames, self.plan = data, batcher, seg_frames, plan

    def probs(self, model, name: str, chosen: dict | None = None) -> np.ndarray:
        part = self.data.parts[name]
        if chosen is None and self.plan is not None:
            chosen = self.plan[name]
        if self.seg_frames:
            from ser_pipeline.models.segments import average_segment_posteriors

            seg, owner = _segment(part, self.seg_frames)
            return average_segment_posteriors(predict(model, seg, self.batcher), owner, len(part))
        return predict(model, part, self.batcher, self.data, name, chosen)

    def scores(self, model, name: str, chosen: dict | None = None) -> tuple[dict, np.ndarray]:
        p = self.probs(model, name, chosen)
        return scores(self.data.parts[name].y, p.argmax(axis=1), self.data.classes), p


def loss_weights(y: np.ndarray, lengths: list[int], n_classes: int, opts: dict) -> np.ndarray:
    n = len(y)
    weights = np.ones(n, dtype=np.float32)
    if opts["class_weights"]:
        counts = np.bincount(y, minlength=n_classes).astype(np.float32)
        weights *= (n / (n_classes * np.maximum(counts, 1)))[y]
    if opts["length_weights"]:
        lengths = np.asarray(lengths, dtype=np.float32)
        weights *= lengths.mean() / np.maximum(lengths, 1)
    return weights / weights.mean()


def _optimizers(model, opts: dict, total_steps: int):
    groups = model.optimizer_groups()
    seen: dict[int, str] = {}
    for name, params in groups.items():
        for p in params:
            if id(p) in seen:
                raise TrainingError(f"model '{model.name}': a parameter is in optimiser groups "
                                    f"'{seen[id(p)]}' and '{name}'")
            seen[id(p)] = name
    loose = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if loose:
        raise TrainingError(f"model '{model.name}': parameters {loose[:3]} are in no optimiser group")
    opt_cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[opts["optimizer"]]
    kwargs = {"lr": float(opts["lr"]), "weight_decay": float(opts["weight_decay"])}
    if opts["optimizer"] == "sgd":
        kwargs["momentum"] = float(opts["momentum"])
    # One fused kernel per step instead of a few small ops per parameter tensor: the same
    # update, 10-20 % of a small head's training step on the CPU (benchmarks/bench_optimizer.py).
    kwargs["fused"] = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda")
                          for params in groups.values() for p in params)
    optimizers = {name: opt_cls(params, **kwargs) for name, params in groups.items()}
    if opts["lr_schedule"] == "poly":
        power = float(opts["lr_power"])
        schedulers = [torch.optim.lr_scheduler.LambdaLR(
            o, lambda step: max(0.0, 1.0 - step / max(1, total_steps)) ** power) for o in optimizers.values()]
    else:
        schedulers = []
    return optimizers, schedulers


def convergence(history: list[dict], tolerance: float) -> dict:
    """Whether the training loss was still falling when training stopped.

    Rule: with k = max(2, epochs // 10), the mean training loss of the last k epochs is
    compared with that of the k epochs before; a relative drop above ``tolerance`` flags
    the run (its table row says the model may be under-trained).
    """
    losses = [h["train_loss"] for h in history]
    k = max(2, len(losses) // 10)
    rule = (f"mean training loss of the last {k} epochs vs the {k} before: flagged if it fell by more "
            f"than {100 * tolerance:g}%")
    if len(losses) < 2 * k:
        return {"rule": rule, "final_relative_drop": None, "tolerance": tolerance, "still_falling": False,
                "note": f"too few epochs ({len(losses)}) to judge"}
    before, last = float(np.mean(losses[-2 * k:-k])), float(np.mean(losses[-k:]))
    drop = (before - last) / abs(before) if before else 0.0
    return {"rule": rule, "final_relative_drop": round(drop, 5), "tolerance": tolerance,
            "still_falling": bool(drop > tolerance)}


def fit_neural(build, data: FoldData, opts: dict, device: str, seed: int, plan: dict | None,
               model_name: str) -> dict:
    """Train (one model per batch-size candidate); return the chosen model and its record."""
    candidates = opts["batch_size"] if isinstance(opts["batch_size"], list) else [opts["batch_size"]]
    runs = []
    for bs in candidates:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = build().to(device)
        runs.append({"batch_size": bs, **_fit_one(model, data, opts, bs, rng, device, plan, model_name)})
    if len(runs) > 1:
        best = max(runs, key=lambda r: (r["val_metrics"]["UA"], -runs.index(r)))
        best["batch_size_selection"] = {
            "rule": "best validation UA at the selected epoch (the test part is never used)",
            "candidates": {r["batch_size"]: r["val_metrics"]["UA"] for r in runs}}
        return best
    return runs[0]


def _fit_one(model, data: FoldData, opts: dict, batch_size: int, rng, device: str, plan: dict | None,
             model_name: str) -> dict:
    train = data.parts["train"]
    seg_frames = None
    if opts["input_mode"] == "segments":
        stream = next(iter(train.streams))
        seg_frames = int(round(opts["segment_seconds"] * _rate(data.frame_rates, stream, "segment_seconds")))
        train, _ = _segment(train, seg_frames)
    crop = None
    if opts["crop_seconds"]:
        crop = {s: max(1, int(round(opts["crop_seconds"] * _rate(data.frame_rates, s, "crop_seconds"))))
                for s in train.streams}
    weights = loss_weights(train.y, train.lengths(), len(data.classes), opts)
    batcher = Batcher(model, data, device, weights)
    evaluator = Evaluator(data, Batcher(model, data, device), seg_frames, plan)
    n_batches = math.ceil(len(train) / batch_size)
    optimizers, schedulers = _optimizers(model, opts, int(opts["epochs"]) * n_batches)
    epochs = int(opts["epochs"])
    if plan is not None and seg_frames:
        raise SerError(f"models.{model_name}.train: a reference utterance does not combine with input_mode: segments")
    history, best, stale, step, total_steps = [], None, 0, 0, epochs * n_batches
    pools = plan["train_pools"] if plan else None
    for epoch in range(1, epochs + 1):
        model.train()
        epoch_part = train
        if crop:
            epoch_part = Part(train.ids, train.y, train.speakers,
                              {s: [random_crop(a, crop[s], rng) for a in v] for s, v in train.streams.items()},
                              train.raw)
        totals: dict[str, float] = {}
        for idx in length_buckets(epoch_part.lengths(), batch_size, rng):
            refs = _train_refs(epoch_part, idx, pools, rng) if pools is not None else None
            stats = model.training_step(batcher(epoch_part, idx, refs), optimizers, step / total_steps)
            step += 1
            if not all(math.isfinite(v) for v in stats.values()):
                raise TrainingError(f"model {model_name}, fold {data.fold['name']}, epoch {epoch}: non-finite "
                                    f"training loss {stats}; the model diverged (lower the learning rate) or "
                                    f"its input holds non-finite values")
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v * len(idx)
            for sched in schedulers:
                sched.step()
        entry = {"epoch": epoch, "train_loss": totals.pop("loss") / len(train),
                 "lr": float(next(iter(optimizers.values())).param_groups[0]["lr"])}
        entry.update({k: v / len(train) for k, v in totals.items()})
        if "val" in data.parts:
            val, _ = evaluator.scores(model, "val")
            entry["val_UA"], entry["val_WA"] = val["UA"], val["WA"]
            if opts["select_on_val"]:
                if best is None or val["UA"] > best[0]:
                    best, stale = (val["UA"], epoch, copy.deepcopy(model.state_dict())), 0
                else:
                    stale += 1
        history.append(entry)
        if opts["patience"] and stale >= int(opts["patience"]):
            break
    selected = history[-1]["epoch"]
    if opts["select_on_val"]:
        if best is None:
            raise TrainingError(f"models.{model_name}.train.select_on_val needs a protocol with a validation part")
        selected = best[1]
        model.load_state_dict(best[2])
    val_metrics = evaluator.scores(model, "val")[0] if "val" in data.parts else None
    return {"model": model, "history": history, "selected_epoch": selected, "val_metrics": val_metrics,
            "evaluator": evaluator, "batcher": evaluator.batcher, "stopped_early": len(history) < epochs,
            "convergence": convergence(history, float(opts["converge_tolerance"]))}


def _train_refs(part: Part, idx: list[int], pools: dict[str, list[int]], rng) -> dict:
    """For each item a random reference utterance of its speaker, never the item itself.

    With training crops the reference is the same epoch's crop of the chosen utterance.
    """
    chosen = []
    for i in idx:
        options = [j for j in pools[part.speakers[i]] if part.ids[j] != part.ids[i]]
        chosen.append(options[int(rng.integers(len(options)))])
    return {s: [part.streams[s][j] for j in chosen] for s in part.streams}

"""Fused vs per-tensor optimiser steps in the demo's small models, side by side.

The training core builds its optimisers with ``fused=True`` (training/neural.py): one kernel
updates every parameter, where the CPU default runs a few small ops per parameter tensor.
Times training steps (forward, backward, step) of the demo config's heads and of a
Triantafyllopoulos ResNet, batch 16, 1 torch thread, alternating the two settings in
rounds; prints min and median milliseconds per step, their ratio, and the largest
parameter difference after the timed steps (the same update up to float rounding).
Usage: python benchmarks/bench_optimizer.py [--rounds 5] [--steps 100]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import step_timing  # noqa: E402  (beside this script, first on sys.path)
from ser_pipeline.models import build_model  # noqa: E402

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
# (label, config.yaml model, input dims, frames per utterance, optimiser)
CASES = [("MLP head, wav2vec (160 ms frames)", "mlp_pool_w2v", 512, 20, "adam"),
         ("MLP head, LLD (200 ms frames)", "mlp_pool_lld", 34, 15, "adam"),
         ("attention head, wav2vec", "attention_pool_w2v", 512, 20, "adam"),
         ("ResNet (Triantafyllopoulos), 2 s crops", "resnet", 201, 200, "sgd")]


def run(entry: dict, dim: int, frames: int, optimizer: str, fused: bool, steps: int):
    torch.manual_seed(0)
    model = build_model(entry["arch"], {"audio": dim}, 4, entry.get("hparams") or {}).train()
    kwargs = {"lr": 1e-3, "weight_decay": 0.01, "fused": fused, "foreach": False if not fused else None}
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), momentum=0.9, **kwargs)
    else:
        opt = torch.optim.Adam(model.parameters(), **kwargs)
    g = torch.Generator().manual_seed(1)
    batch = {"audio": torch.randn(16, frames, dim, generator=g), "audio_mask": torch.ones(16, frames, dtype=torch.bool),
             "label": torch.randint(0, 4, (16,), generator=g), "weight": torch.ones(16)}
    # the same dropout masks in both settings, so the parameters can be compared
    torch.manual_seed(2)
    for _ in range(5):
        loss = model.compute_objectives(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = model.compute_objectives(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps * 1e3, [p.detach().clone() for p in model.parameters()]


def main() -> None:
    args = step_timing.start(__doc__.splitlines()[0], rounds=5, steps=100)
    for label, name, dim, frames, optimizer in CASES:
        entry = CONFIG["models"][name]
        steps = max(10, args.steps // 10) if name == "resnet" else args.steps
        times, params = {False: [], True: []}, {}
        for r in range(args.rounds):
            for fused in ((False, True) if r % 2 == 0 else (True, False)):
                ms, params[fused] = run(entry, dim, frames, optimizer, fused, steps)
                times[fused].append(ms)
        a, b = times[False], times[True]
        diff = max(float((x - y).abs().max()) for x, y in zip(params[False], params[True]))
        print(f"{label} ({optimizer}): ms per step, per-tensor min {min(a):.2f} median {statistics.median(a):.2f}; "
              f"fused min {min(b):.2f} median {statistics.median(b):.2f}; ratio {min(a) / min(b):.2f}x (min) "
              f"{statistics.median(a) / statistics.median(b):.2f}x (median); max parameter difference {diff:.1e}")
    step_timing.done()


if __name__ == "__main__":
    main()

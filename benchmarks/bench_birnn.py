"""Packed vs dense bidirectional RNNs (models/birnn.py) in two models' training steps.

Times training steps (forward, backward, Adam) of the demo config's bimodal wav2vec + BERT
model (BiLSTMs over 20-60 averaged wav2vec frames and 8-30 sub-word tokens) and of Ma et
al.'s CRNN (its BiLSTM over the convolution output), batch 16, on 1 torch thread, once with
the packed path and once with the dense path the CPU now takes, alternating the two in
rounds; prints min and median milliseconds per step and their ratio, and checks the two
paths give the same loss.
Usage: python benchmarks/bench_birnn.py [--rounds 7] [--steps 30]
"""
from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import step_timing  # noqa: E402  (beside this script, first on sys.path)
from ser_pipeline.models import bimodal, birnn, build_model, ma_crnn  # noqa: E402

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())


def batches(streams: dict, g: torch.Generator, n: int = 6) -> list[dict]:
    out = []
    for _ in range(n):
        b = {"label": torch.randint(0, 4, (16,), generator=g), "weight": torch.ones(16)}
        for name, (dim, lo, hi) in streams.items():
            lengths = torch.randint(lo, hi + 1, (16,), generator=g)
            b[name] = torch.randn(16, hi, dim, generator=g)
            b[f"{name}_mask"] = torch.arange(hi)[None, :] < lengths[:, None]
        out.append(b)
    return out


CASES = {
    "bimodal (config.yaml demo sizes)": (
        bimodal, "bimodal_align", CONFIG["models"]["bimodal"]["hparams"],
        {"audio": (512, 20, 60), "text": (384, 8, 30)}),
    "Ma CRNN (config.yaml demo sizes)": (
        ma_crnn, "ma_crnn", CONFIG["models"]["ma_fixed"]["hparams"], {"audio": (200, 100, 300)}),
}


def time_steps(module, arch: str, hparams: dict, data: list[dict], path: str, steps: int) -> tuple[float, float]:
    module.bidirectional = functools.partial(birnn.bidirectional, path=path)
    try:
        torch.manual_seed(0)
        dims = {k: v.shape[-1] for k, v in data[0].items() if k in ("audio", "text")}
        model = build_model(arch, dims, 4, hparams).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.eval()
        with torch.no_grad():
            check = float(model.compute_objectives(data[0]))
        model.train()
        t0 = time.perf_counter()
        for i in range(steps):
            loss = model.compute_objectives(data[i % len(data)])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / steps * 1e3, check
    finally:
        module.bidirectional = birnn.bidirectional


def main() -> None:
    args = step_timing.start(__doc__.splitlines()[0], rounds=7, steps=30)
    g = torch.Generator().manual_seed(0)
    for name, (module, arch, hp, streams) in CASES.items():
        data = batches(streams, g)
        times, checks = {"packed": [], "dense": []}, {}
        for r in range(args.rounds):
            for path in (("packed", "dense") if r % 2 == 0 else ("dense", "packed")):
                ms, checks[path] = time_steps(module, arch, hp, data, path, args.steps)
                times[path].append(ms)
        a, b = times["packed"], times["dense"]
        print(f"{name}: ms per training step, packed min {min(a):.1f} median {statistics.median(a):.1f}; "
              f"dense min {min(b):.1f} median {statistics.median(b):.1f}; ratio {min(a) / min(b):.2f}x (min) "
              f"{statistics.median(a) / statistics.median(b):.2f}x (median); eval loss packed "
              f"{checks['packed']:.6f} dense {checks['dense']:.6f}")
    step_timing.done()


if __name__ == "__main__":
    main()

"""nn.Dropout vs ser_pipeline's FastDropout in the MLP head's training step, side by side.

Times training steps (forward, backward, Adam) of the demo's MLP-with-pooling head on LLD
frames (34 dims, 3 x 160 units, batch 16 utterances of 20-50 averaged frames) and on
wav2vec frames (512 dims, 2 x 128 units), once with torch's nn.Dropout and once with
FastDropout, alternating the two in rounds, on 1 torch thread; prints min and median
milliseconds per step and their ratio, and the mask-drawing time alone.
Usage: python benchmarks/bench_dropout.py [--rounds 7] [--steps 100]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import step_timing  # noqa: E402  (beside this script, first on sys.path)
from ser_pipeline.models import build_model  # noqa: E402
from ser_pipeline.models.dropout import FastDropout  # noqa: E402

CASES = {"MLP head, LLD (34 -> 3 x 160)": (34, {"layers": 3, "units": 160}),
         "MLP head, wav2vec (512 -> 2 x 128)": (512, {"layers": 2, "units": 128})}


def model_with(dropout: str, dim: int, hparams: dict):
    torch.manual_seed(0)
    m = build_model("mlp_pool", {"audio": dim}, 4, hparams)
    if dropout == "nn.Dropout":
        for i, layer in enumerate(m.mlp):
            if isinstance(layer, FastDropout):
                m.mlp[i] = torch.nn.Dropout(layer.p)
    return m.train()


def time_steps(model, batches, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for i in range(steps):
        x, mask, y = batches[i % len(batches)]
        loss = torch.nn.functional.cross_entropy(model({"audio": x, "audio_mask": mask}), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    args = step_timing.start(__doc__.splitlines()[0], rounds=7, steps=100)
    g = torch.Generator().manual_seed(0)
    for name, (dim, hp) in CASES.items():
        batches = []
        for _ in range(8):
            lengths = torch.randint(20, 51, (16,), generator=g)
            mask = torch.arange(50)[None, :] < lengths[:, None]
            batches.append((torch.randn(16, 50, dim, generator=g), mask, torch.randint(0, 4, (16,), generator=g)))
        times = {"nn.Dropout": [], "FastDropout": []}
        for r in range(args.rounds):
            for kind in (("nn.Dropout", "FastDropout") if r % 2 == 0 else ("FastDropout", "nn.Dropout")):
                times[kind].append(time_steps(model_with(kind, dim, hp), batches, args.steps))
        a, b = times["nn.Dropout"], times["FastDropout"]
        print(f"{name}: ms per training step, nn.Dropout min {min(a):.2f} median {statistics.median(a):.2f}; "
              f"FastDropout min {min(b):.2f} median {statistics.median(b):.2f}; "
              f"ratio {min(a) / min(b):.2f}x (min) {statistics.median(a) / statistics.median(b):.2f}x (median)")
    x = torch.randn(16, 50, 160)
    draws = {}
    for kind, layer in (("nn.Dropout", torch.nn.Dropout(0.2).train()), ("FastDropout", FastDropout(0.2).train())):
        layer(x)
        t0 = time.perf_counter()
        for _ in range(200):
            layer(x)
        draws[kind] = (time.perf_counter() - t0) / 200 * 1e3
    print(f"mask alone, 16 x 50 x 160 values: nn.Dropout {draws['nn.Dropout']:.3f} ms, FastDropout "
          f"{draws['FastDropout']:.3f} ms ({draws['nn.Dropout'] / draws['FastDropout']:.1f}x)")
    step_timing.done()


if __name__ == "__main__":
    main()

"""Dropout whose masks come from numpy's PCG64 generator instead of torch's CPU generator.

Why: on the CPU, ``torch.dropout`` draws each mask element from a Mersenne twister; in the
per-frame MLP heads that draw was a third of a training job's time (a profile of the demo's
MLP-on-LLD job: 4.8 of 15 s). numpy's generator draws the same mask about four times
faster, and a training step of that head 1.45x (``benchmarks/bench_dropout.py``).
Same semantics as ``nn.Dropout`` in training
mode (zero with probability p, scale the rest by 1 / (1 - p)), identity in eval mode. The
probability is a multiple of 1/65536 (0.2 -> 0.19999695), and the scale is that of the
probability used. Off the CPU (CUDA) it is ``F.dropout``, whose generator is fast there.
Reproducible: the generator is seeded from torch's global generator at the first training
step, so ``torch.manual_seed`` fixes every mask as it does for ``nn.Dropout``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_LEVELS = 1 << 16


class FastDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.threshold = int(round(self.p * _LEVELS))
        self.scale = 1.0 / (1.0 - self.threshold / _LEVELS)
        self._rng: np.random.Generator | None = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        if self._rng is None:
            self._rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        keep = self._rng.integers(0, _LEVELS, x.numel(), dtype=np.uint16) >= self.threshold
        return x * torch.from_numpy(keep).view(x.shape).to(x.dtype).mul_(self.scale)

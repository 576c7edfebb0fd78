"""Speed perturbation (Ko et al. 2015, as in Kaldi's and sox's ``speed``), used by Li et al.
(2020) with factors 0.8, 0.9, 1.1 and 1.2.

Speed perturbation changes tempo and pitch together, which is what the papers mean: the
signal is resampled as if it had been recorded at ``sr * factor`` and played back at ``sr``.
A tempo-only change (WSOLA, sox ``tempo``) would keep the pitch, and with it a speaker cue
the augmentation is meant to vary.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ser_pipeline.errors import ConfigError


def speed_perturb(x: np.ndarray, factor: float, sr: int = 16000) -> np.ndarray:
    """``x`` played ``factor`` times faster: length / factor, every frequency * factor.

    Deterministic (a fixed windowed-sinc resampler, no randomness), so a perturbed copy can
    be cached and rebuilt bit-identically. Rates are integers as torchaudio requires;
    ``round(sr * factor)`` is exact for the factors in use (0.8-1.2 at 16 kHz).
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) \
            or not (0.1 <= factor <= 10.0):
        # A config value (the features entry's ``speed``), so a ConfigError the CLI can print.
        raise ConfigError(f"speed factor must be a number in [0.1, 10], got {factor!r}")
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sample rate must be a positive integer, got {sr!r}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"speed_perturb expects a 1-D waveform, got shape {x.shape}")
    orig = int(round(sr * factor))
    if orig == sr or x.size == 0:
        return x.copy()
    import torchaudio.functional as F

    y = F.resample(torch.from_numpy(np.ascontiguousarray(x)), orig_freq=orig, new_freq=int(sr))
    return y.numpy().astype(np.float32, copy=False)

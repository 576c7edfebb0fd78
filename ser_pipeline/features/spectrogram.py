"""Linear-frequency log spectrograms (Ma et al. 2018; Triantafyllopoulos et al. 2021).

This module also holds the framing helpers the other signal extractors (``lld``,
``fbank_pitch``) share, so that every frame-level feature in the pipeline uses one framing
convention: frame ``t`` covers samples ``[t*hop, t*hop + win)`` and only whole frames are
kept ("snip edges", as Kaldi and pyAudioAnalysis do). An utterance shorter than one window
is zero-padded to one window, so every utterance yields at least one frame instead of an
empty matrix that would break pooling downstream.
"""
from __future__ import annotations

import math
from importlib import metadata

import numpy as np
import torch

from ser_pipeline.errors import AudioError, ConfigError
from ser_pipeline.features.base import Extractor, register

# Elements of the widest per-frame intermediate a chunk may hold (8 MB in float64).
# Chunking along time keeps memory flat for hour-long inputs. It is also faster on CPU than
# one big chunk: intermediates of a few MB stay in cache and avoid the page faults that
# freshly mapped tens-of-MB tensors cost, while a few hundred frames per chunk keep the
# per-operation overhead negligible (measured: 2**20 beat both 2**16 and 2**22 by ~2x).
CHUNK_ELEMENTS = 1 << 20


# ----------------------------------------------------------------------------- helpers
def parse_config(name: str, config: dict, defaults: dict) -> dict:
    """Merge ``config`` over ``defaults``, refusing unknown keys.

    A misspelt key would otherwise be ignored silently and the store would be built with a
    default the user did not mean, and cached under the wrong config.
    """
    unknown = set(config) - set(defaults)
    if unknown:
        raise ConfigError(f"{name}: unknown params {sorted(unknown)}; allowed: {sorted(defaults)}")
    merged = dict(defaults)
    merged.update(config)
    return merged


def positive(name: str, key: str, value, integer: bool = False) -> float:
    """``value`` as a positive number, or a ConfigError naming ``key``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if ok and integer and int(value) != value:
        ok = False
    if not ok:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name}: params.{key} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


def choice(name: str, key: str, value, allowed) -> str:
    if value not in allowed:
        raise ConfigError(f"{name}: params.{key} must be one of {list(allowed)}, got {value!r}")
    return value


def seconds_to_samples(name: str, key: str, seconds: float, sr: int) -> int:
    """Window/hop lengths are configured in seconds so configs read the same as the papers."""
    n = int(round(seconds * sr))
    if n < 1:
        raise ConfigError(f"{name}: params.{key}={seconds} s is shorter than one sample at {sr} Hz")
    return n


def n_frames(n_samples: int, win: int, hop: int) -> int:
    """Frames of an ``n_samples`` signal under the snip-edges convention (at least one)."""
    return 1 + (max(n_samples, win) - win) // hop


def check_batch(items, sample_rate) -> None:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    for i, x in enumerate(items):
        a = np.asarray(x)
        if a.ndim != 1:
            raise AudioError(f"batch item {i}", f"expected a 1-D waveform, got shape {a.shape}")
        if a.size == 0:
            raise AudioError(f"batch item {i}", "is empty (0 samples)")


def pad_batch(signals: list[torch.Tensor], min_len: int = 0, left: int = 0) -> torch.Tensor:
    """Stack 1-D tensors into [B, L] with zeros after each (and ``left`` zeros before).

    Padding is always zeros so a frame that reaches past the end of its own utterance sees
    the same values whatever the batch partners are: that is what makes the output of an
    utterance independent of the batch it was computed in.
    """
    length = max(min_len, max(int(s.shape[0]) for s in signals)) + left
    out = signals[0].new_zeros((len(signals), length))
    for i, s in enumerate(signals):
        out[i, left:left + s.shape[0]] = s
    return out


def chunk_size(batch: int, per_frame_elements: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, batch * per_frame_elements))


def to_tensor(x, device, dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device=device, dtype=dtype)


def versions(*packages: str) -> dict:
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


# ------------------------------------------------------------------------ extractors
class _LogSpectrogram(Extractor):
    """Shared STFT -> log spectrum code; subclasses only change the defaults.

    params: win, hop (seconds); n_fft (DFT points, >= the window in samples; the frame is
    zero-padded to it); fmax (Hz, keep bins below it; null keeps all n_fft/2+1); window
    "hamming" | "hann" | "rectangular" (symmetric); power 1 (magnitude) | 2 (power);
    log "db" (10*log10(max(S, floor))) | "ln" (ln(S + floor)); floor; peak_normalize
    (divide each utterance by its maximum absolute sample first).

    Frames are taken with an explicit unfold rather than ``torch.stft`` because the papers
    zero-pad a short window to a long DFT (640 -> 1600 points); ``torch.stft`` would take
    n_fft samples per frame instead and change both the framing and the frame count.
    """

    supports_gpu = True
    DEFAULTS: dict = {}

    def __init__(self, config: dict, device: str = "cpu"):
        super().__init__(config, device)
        c = parse_config(self.name, self.config, self.DEFAULTS)
        self.win_s = positive(self.name, "win", c["win"])
        self.hop_s = positive(self.name, "hop", c["hop"])
        self.n_fft = positive(self.name, "n_fft", c["n_fft"], integer=True)
        self.window = choice(self.name, "window", c["window"], ("hamming", "hann", "rectangular"))
        self.power = choice(self.name, "power", c["power"], (1, 2))
        self.log = choice(self.name, "log", c["log"], ("db", "ln"))
        self.floor = positive(self.name, "floor", c["floor"])
        self.peak_normalize = bool(c["peak_normalize"])
        fmax = c["fmax"]
        if fmax is not None:
            fmax = positive(self.name, "fmax", fmax)
        self.fmax = fmax
        self.frame_rate = 1.0 / self.hop_s
        # Checked against the nominal rate now so a bad config fails before any audio is read.
        self._geometry(16000)

    def _geometry(self, sr: int) -> tuple[int, int, int]:
        win = seconds_to_samples(self.name, "win", self.win_s, sr)
        hop = seconds_to_samples(self.name, "hop", self.hop_s, sr)
        if self.n_fft < win:
            raise ConfigError(f"{self.name}: params.n_fft={self.n_fft} is shorter than the window "
                              f"({win} samples); the window would be truncated")
        full = self.n_fft // 2 + 1
        if self.fmax is None:
            bins = full
        else:
            # Bins strictly below fmax: 1600 points at 16 kHz and 4 kHz give Ma et al.'s 400.
            bins = int(math.ceil(self.fmax * self.n_fft / sr - 1e-9))
            if bins > full:
                raise ConfigError(f"{self.name}: params.fmax={self.fmax} Hz is above the Nyquist "
                                  f"frequency {sr / 2} Hz")
        return win, hop, bins

    @property
    def dim(self) -> int:
        return self._geometry(16000)[2]

    def _window(self, win: int, device, dtype) -> torch.Tensor:
        # Symmetric windows (MATLAB/numpy convention) because neither paper asks for periodic.
        if self.window == "hamming":
            return torch.hamming_window(win, periodic=False, device=device, dtype=dtype)
        if self.window == "hann":
            return torch.hann_window(win, periodic=False, device=device, dtype=dtype)
        return torch.ones(win, device=device, dtype=dtype)

    @torch.no_grad()
    def extract_batch(self, items: list, sample_rate: int = 16000) -> list:
        if not items:
            return []
        check_batch(items, sample_rate)
        win, hop, bins = self._geometry(int(sample_rate))
        dev = torch.device(self.device)
        sigs = [to_tensor(x, dev, torch.float32) for x in items]
        if self.peak_normalize:
            sigs = [s / s.abs().max().clamp_min(1e-10) for s in sigs]
        counts = [n_frames(s.shape[0], win, hop) for s in sigs]
        x = pad_batch(sigs, min_len=win)
        frames = x.unfold(1, win, hop)  # view [B, T, win]
        w = self._window(win, dev, torch.float32)
        step = chunk_size(len(sigs), self.n_fft + 2)
        outs = []
        for t0 in range(0, frames.shape[1], step):
            spec = torch.fft.rfft(frames[:, t0:t0 + step] * w, n=self.n_fft)[..., :bins].abs()
            if self.power == 2:
                spec = spec.square()
            if self.log == "db":
                outs.append(10.0 * torch.log10(spec.clamp_min(self.floor)))
            else:
                outs.append(torch.log(spec + self.floor))
        out = torch.cat(outs, dim=1).cpu().numpy()
        return [np.ascontiguousarray(out[i, :n], dtype=np.float32) for i, n in enumerate(counts)]

    def info(self) -> dict:
        return {"versions": versions("torch")}


@register("ma_spectrogram")
class MaSpectrogram(_LogSpectrogram):
    """Ma et al. (2018), after Satt et al. (2017): 40 ms Hamming / 10 ms hop, 1600-point DFT
    (a 10 Hz grid), 0-4 kHz kept (400 bins), log power in dB.

    Output [T, 400]. The floor (1e-10 power, i.e. -100 dB) only keeps digital silence finite.
    No normalisation here: the paper z-normalises with training-set statistics, which depend
    on the fold and so belong to training, not to the shared feature cache.
    """

    DEFAULTS = {"win": 0.040, "hop": 0.010, "n_fft": 1600, "fmax": 4000.0, "window": "hamming",
                "power": 2, "log": "db", "floor": 1e-10, "peak_normalize": False}


@register("log_spectrogram")
class LogSpectrogram(_LogSpectrogram):
    """Triantafyllopoulos et al. (2021): audio peak-normalised per segment, 25 ms window,
    10 ms hop, log spectrogram.

    The paper states neither the DFT size, the window shape nor magnitude vs power, so the
    defaults are our assumption, chosen as the most common librosa-style setting: n_fft =
    window = 400 points (no zero padding, 201 bins, 0-8 kHz), Hann, natural log of the
    magnitude plus 1e-7. Every one of them is a config key so a closer reading can change it.
    """

    DEFAULTS = {"win": 0.025, "hop": 0.010, "n_fft": 400, "fmax": None, "window": "hann",
                "power": 1, "log": "ln", "floor": 1e-7, "peak_normalize": True}

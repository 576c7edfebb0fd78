"""The 34 pyAudioAnalysis short-term features (Boigne et al. 2020, after Giannakopoulos 2015).

pyAudioAnalysis computes them frame by frame in a Python loop, which is the slowest step of
the whole LLD baseline. The ``torch`` backend computes the same definitions on all frames of
a batch at once; the ``pyaudioanalysis`` backend calls the library itself and stays
selectable so that parity can be re-checked whenever either side changes.

Columns (pyAudioAnalysis order): 0 zcr, 1 energy, 2 energy_entropy, 3 spectral_centroid,
4 spectral_spread, 5 spectral_entropy, 6 spectral_flux, 7 spectral_rolloff, 8-20 mfcc_1..13,
21-32 chroma_1..12, 33 chroma_std.

Reproduced quirks of pyAudioAnalysis 0.3.14 (kept on purpose: the point is to reproduce the
paper's features, not to fix them):
  * the signal is DC-removed and divided by its maximum absolute value per utterance, so
    the features of an utterance depend on its loudest sample;
  * frames are rectangular-windowed; the magnitude spectrum keeps win/2 bins, divided by
    win/2;
  * the MFCC filterbank places bin k at k*sr/(win/2) Hz (twice its true frequency), and
    the spectral centroid labels bin k as (k+1)*sr/win Hz;
  * the chroma map scatters each bin's power into slot round(12*log2(f/27.5)) with numpy
    assignment semantics, so where several bins share a slot only the highest one counts,
    the lowest bin's negative slot wraps around to the end of the array, and each slot is
    divided by a count looked up at a mismatched index. All of this is a fixed 12 x (win/2)
    matrix, built once below.
  * the first frame's spectral flux is 0 (the frame is compared with itself).
"""
from __future__ import annotations

import math
import sys

import numpy as np
import torch

from ser_pipeline.errors import ConfigError
from ser_pipeline.features.base import Extractor, register
from ser_pipeline.features.spectrogram import (check_batch, choice, chunk_size, n_frames, pad_batch,
                                               parse_config, positive, seconds_to_samples, to_tensor,
                                               versions)

EPS = sys.float_info.epsilon  # the epsilon pyAudioAnalysis guards its divisions with
N_MFCC = 13
N_FEATURES = 34
FEATURE_NAMES = (["zcr", "energy", "energy_entropy", "spectral_centroid", "spectral_spread",
                  "spectral_entropy", "spectral_flux", "spectral_rolloff"]
                 + [f"mfcc_{i}" for i in range(1, 14)] + [f"chroma_{i}" for i in range(1, 13)]
                 + ["chroma_std"])


def pyaa_mfcc_filterbank(sr: int, n_bins: int) -> np.ndarray:
    """[40, n_bins] triangular filters with pyAudioAnalysis's edges and bin frequencies.

    13 linear filters from 133.33 Hz in 66.67 Hz steps, then 27 log-spaced ones (ratio
    1.0711703), unit-area triangles. Bin k is placed at k*sr/n_bins Hz as pyAudioAnalysis
    does, which is why this is not an ordinary mel filterbank.
    """
    edges = 133.33 + np.arange(13) * (200.0 / 3.0)
    edges = np.concatenate([edges, edges[-1] * 1.0711703 ** np.arange(1, 30)])
    heights = 2.0 / (edges[2:] - edges[:-2])
    k = np.arange(n_bins)
    bin_hz = k / (1.0 * n_bins) * sr
    fb = np.zeros((40, n_bins))
    for i in range(40):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        a, b, c = (np.floor(f * n_bins / sr) for f in (lo, mid, hi))
        up = (k > a) & (k <= b)
        down = (k > b) & (k <= c)
        fb[i, up] = heights[i] / (mid - lo) * (bin_hz[up] - lo)
        fb[i, down] = heights[i] / (hi - mid) * (hi - bin_hz[down])
    return fb


def pyaa_chroma_matrix(sr: int, n_bins: int) -> np.ndarray:
    """[12, n_bins] matrix M with chroma = M @ power / sum(power), as pyAudioAnalysis computes it."""
    k = np.arange(n_bins)
    freqs = (k + 1) * sr / (2.0 * n_bins)
    cls = np.round(12.0 * np.log2(freqs / 27.5)).astype(int)
    if cls.max() >= n_bins:
        # pyAudioAnalysis takes a different (broken) branch here; refuse rather than guess.
        raise ConfigError(f"lld: window too short for pyAudioAnalysis chroma ({2 * n_bins} samples "
                          f"at {sr} Hz); use params.win of at least 0.025 s")
    _, inverse, counts = np.unique(cls, return_inverse=True, return_counts=True)
    per_bin_count = counts[inverse]
    slot = cls % n_bins  # numpy wraps negative slots to the end of the array
    source = np.full(n_bins, -1)
    np.maximum.at(source, slot, k)  # the highest bin writing a slot is the one that stays
    m = np.zeros((12, n_bins))
    for j in np.nonzero(source >= 0)[0]:
        m[j % 12, source[j]] += 1.0 / per_bin_count[cls[j] % n_bins]
    return m


def dct2_ortho(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] orthonormal DCT-II matrix (scipy's dct(type=2, norm='ortho'))."""
    n = np.arange(n_in)
    m = np.cos(np.pi * np.arange(n_out)[:, None] * (2 * n[None, :] + 1) / (2.0 * n_in))
    m *= math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m


def _block_entropy(sq: torch.Tensor, n_blocks: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """(entropy of the energy shares of ``n_blocks`` equal consecutive blocks, total energy).

    Takes squared values so callers that also need the squares compute them once. The total
    includes the tail samples that do not fill a block, as in pyAudioAnalysis.
    """
    total = sq.sum(-1)
    size = sq.shape[-1] // n_blocks
    s = sq[..., : size * n_blocks].unflatten(-1, (n_blocks, size)).sum(-1) / (total[..., None] + EPS)
    return -(s * torch.log2(s + EPS)).sum(-1), total


@register("lld")
class PyAudioAnalysisLLD(Extractor):
    """34 pyAudioAnalysis short-term features per 50 ms frame, 25 ms step, no deltas. [T, 34]

    params:
      backend    "torch" (default, batched, CPU or GPU) or "pyaudioanalysis" (the library
                 itself, one utterance at a time on CPU: the reference).
      win, step  seconds (0.050, 0.025 as in Boigne et al.).
      precision  "float64" (default) or "float32" for the torch backend. float64 matches the
                 reference to ~1e-6 of each feature's range on every frame (~6e-8, the float32
                 output rounding, on voiced ones); float32 is 2-3x faster but diverges on
                 near-silent frames, where pyAudioAnalysis's 2.2e-16 guards dominate.

    Utterances shorter than one window are zero-padded to one window before normalisation,
    by both backends (pyAudioAnalysis itself fails on them).
    """

    supports_gpu = True
    frame_rate = 40.0
    DEFAULTS = {"backend": "torch", "win": 0.050, "step": 0.025, "precision": "float64"}

    def __init__(self, config: dict, device: str = "cpu"):
        super().__init__(config, device)
        c = parse_config("lld", self.config, self.DEFAULTS)
        self.backend = choice("lld", "backend", c["backend"], ("torch", "pyaudioanalysis"))
        self.win_s = positive("lld", "win", c["win"])
        self.step_s = positive("lld", "step", c["step"])
        self.precision = choice("lld", "precision", c["precision"], ("float64", "float32"))
        self.frame_rate = 1.0 / self.step_s
        if self.backend == "pyaudioanalysis":
            self.supports_gpu = False  # the library is numpy-only
        self._tables: dict = {}
        self._geometry(16000)  # fail on a bad window now, not after reading the corpus

    @property
    def dim(self) -> int:
        return N_FEATURES

    @property
    def feature_names(self) -> list[str]:
        return list(FEATURE_NAMES)

    def _geometry(self, sr: int) -> tuple[int, int]:
        win = seconds_to_samples("lld", "win", self.win_s, sr)
        step = seconds_to_samples("lld", "step", self.step_s, sr)
        if win < 20:
            raise ConfigError(f"lld: params.win={self.win_s} s gives {win} samples; need at least 20 "
                              f"(energy entropy splits a frame into 10 blocks)")
        pyaa_chroma_matrix(sr, win // 2)  # raises for windows too short for the chroma map
        return win, step

    def _constants(self, sr: int, win: int, device, dtype):
        key = (sr, win, str(device), dtype)
        if key not in self._tables:
            nb = win // 2
            t = lambda a: torch.as_tensor(a, device=device, dtype=dtype)  # noqa: E731
            self._tables[key] = (
                t(np.arange(1, nb + 1) * (sr / (2.0 * nb))),        # centroid bin labels
                t(pyaa_mfcc_filterbank(sr, nb).T.copy()),           # [nb, 40]
                t(dct2_ortho(40, N_MFCC).T.copy()),                 # [40, 13]
                t(pyaa_chroma_matrix(sr, nb).T.copy()),             # [nb, 12]
            )
        return self._tables[key]

    def extract_batch(self, items: list, sample_rate: int = 16000) -> list:
        if not items:
            return []
        check_batch(items, sample_rate)
        if self.backend == "pyaudioanalysis":
            return [self._reference(x, int(sample_rate)) for x in items]
        return self._torch(items, int(sample_rate))

    # -------------------------------------------------------------- reference backend
    def _reference(self, x, sr: int) -> np.ndarray:
        from pyAudioAnalysis import ShortTermFeatures

        win, step = self._geometry(sr)
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] < win:  # the library fails on signals shorter than one window
            x = np.concatenate([x, np.zeros(win - x.shape[0])])
        # pyAudioAnalysis expects int16-scale samples (it divides by 2**15 first); scaling
        # up keeps its 1e-10 guard in dc_normalize at the intended relative size.
        feats, _ = ShortTermFeatures.feature_extraction(x * 32768.0, sr, win, step, deltas=False)
        return np.ascontiguousarray(feats.T, dtype=np.float32)

    # ------------------------------------------------------------------ torch backend
    @torch.no_grad()
    def _torch(self, items: list, sr: int) -> list:
        win, step = self._geometry(sr)
        nb = win // 2
        dev = torch.device(self.device)
        dtype = torch.float64 if self.precision == "float64" else torch.float32
        ind, fbank, dct, chroma_m = self._constants(sr, win, dev, dtype)

        sigs = []
        for x in items:
            s = to_tensor(x, dev, dtype)
            if s.shape[0] < win:  # padded before normalising, as the reference backend does
                s = torch.nn.functional.pad(s, (0, win - s.shape[0]))
            s = s - s.mean()
            sigs.append(s / (s.abs().max() + 1e-10))
        counts = [n_frames(s.shape[0], win, step) for s in sigs]
        padded = pad_batch(sigs, min_len=win)
        del sigs
        frames = padded.unfold(1, win, step)  # view [B, T, win]
        b, t_max = frames.shape[0], frames.shape[1]
        out = torch.empty((b, t_max, N_FEATURES), device=dev, dtype=dtype)
        # Zero crossings are counted once on the signal and summed per frame with a prefix
        # sum, instead of once per overlapping frame.
        # (int8 signs and an int32 running count: a tenth of the memory of float64 ones.)
        crossings = torch.sign(padded).to(torch.int8).diff(dim=-1).abs_()
        cum = torch.nn.functional.pad(torch.cumsum(crossings, dim=-1, dtype=torch.int32), (1, 0))
        del crossings
        starts = torch.arange(t_max, device=dev) * step
        out[..., 0] = (cum[:, starts + win - 1] - cum[:, starts]).to(dtype) / 2.0 / (win - 1.0)
        del cum
        prev = None  # normalised spectrum of the frame before the chunk, for the flux
        chunk = chunk_size(b, win)
        for t0 in range(0, t_max, chunk):
            f = frames[:, t0:t0 + chunk]
            o = out[:, t0:t0 + chunk]
            # time domain
            o[..., 2], energy = _block_entropy(f.square())
            o[..., 1] = energy / win
            # spectrum, scaled as pyAudioAnalysis scales it; |X|^2 from the real and imaginary
            # parts, as the complex abs (hypot) is several times slower on CPU.
            spec = torch.fft.rfft(f, dim=-1)[..., :nb]
            power = torch.addcmul(spec.real.square(), spec.imag, spec.imag) / (nb * nb)
            mag = power.sqrt()
            mx = mag.amax(-1, keepdim=True)
            xt = mag / torch.where(mx == 0, torch.full_like(mx, EPS), mx)
            den = xt.sum(-1) + EPS
            centroid = (xt * ind).sum(-1) / den
            spread = torch.sqrt(((ind - centroid[..., None]).square() * xt).sum(-1) / den)
            o[..., 3] = centroid / (sr / 2.0)
            o[..., 4] = spread / (sr / 2.0)
            o[..., 5], total = _block_entropy(power)
            total = total[..., None]
            norm = mag / (mag.sum(-1, keepdim=True) + nb * EPS)
            before = torch.cat([norm[:, :1] if prev is None else prev, norm[:, :-1]], dim=1)
            o[..., 6] = (norm - before).square().sum(-1)
            prev = norm[:, -1:]
            cum = torch.cumsum(power, dim=-1) + EPS
            o[..., 7] = (cum <= 0.90 * total).sum(-1).to(dtype) / nb  # first bin past 90 %
            o[..., 8:21] = torch.log10(mag @ fbank + EPS) @ dct
            chroma = (power @ chroma_m) / torch.where(total == 0, torch.full_like(total, EPS), total)
            o[..., 21:33] = chroma
            o[..., 33] = chroma.std(-1, correction=0)
        out = out.to(torch.float32).cpu().numpy()
        return [np.ascontiguousarray(out[i, :n]) for i, n in enumerate(counts)]

    def info(self) -> dict:
        # The torch backend reproduces a pyAudioAnalysis version, so that version pins it too.
        libs = ("torch", "pyAudioAnalysis") if self.backend == "torch" else ("pyAudioAnalysis", "numpy", "scipy")
        v = versions(*libs)
        return {"backend": self.backend, "precision": self.precision, "versions": v,
                "feature_names": list(FEATURE_NAMES)}

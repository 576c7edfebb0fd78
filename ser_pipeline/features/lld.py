"""The 34 pyAudioAnalysis short-term features (Boigne et al. 2020, after Giannakopoulos 2015).

pyAudioAnalysis computes them frame by frame in a Python loop, which is the slowest step of
the whole LLD baseline. The ``torch`` backend computes the same definitions on all frames of
a batch at once; the ``pyaudioanalysis`` backend calls the library itself and stays
selectable so that parity can be re-checked whenever either side changes.

How the torch backend is fast (benchmarks/bench_lld.py measures it against the library):
  * the utterances of a batch are laid end to end on one frame grid, so all frames are a
    strided view of one buffer: no padding to the longest utterance, whatever the batch;
  * each frame is reduced to 80 sums by a few passes over its samples and bins (one FFT,
    |X|^2 and |X|, three small matrix products, block sums), and the 34 features come from
    the sums of the whole batch in one pass;
  * per-frame work shared by overlapping frames is done once per sample (zero crossings,
    block energies), and the roll-off searches 20-bin blocks before bins;
  * float64 throughout by default: near-silent frames need it, where FFT rounding meets
    pyAudioAnalysis's 2.2e-16 guards (a float32 FFT shifts their MFCCs by whole units);
  * on CPU every operation runs on one thread: the operations are too small to split, and
    splitting them made the old code 5-16x slower on 2 threads of a loaded machine (see
    device.set_threads). The job's threads instead take spans of frames from a queue, for
    the batches where that measures faster than one thread (``_WorkerChoice``).

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
import time
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch

from ser_pipeline.errors import ConfigError
from ser_pipeline.features.base import Extractor, register
from ser_pipeline.features.spectrogram import (check_batch, choice, n_frames, parse_config, positive,
                                               seconds_to_samples, versions)

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


# ------------------------------------------------------------------ torch backend
# The work is split in two. Per span of frames, the passes over samples and bins reduce
# each frame to 80 sums (rows of a [80, frames] array) (``_frame_sums``: FFT, power, magnitudes, matrix products, zero
# crossings, block energies, roll-off search). Then one pass over the sums of the whole
# batch (``_features_from_sums``) applies the cheap nonlinear parts (entropies, ratios, log,
# DCT). That keeps the per-span operation count, whose fixed cost dominates small spans,
# to a few dozen, while spans stay small enough for their intermediates to sit in cache.
ZC = 0                # zero-crossing count
E_BLOCKS = slice(1, 11)  # energies of the 10 blocks of the frame
ENERGY = 11           # frame energy (sum of squares)
MOMENTS = slice(12, 15)  # sum m, sum m f, sum m f^2 (m = |X|, f = bin frequency / (sr/2))
CHROMA = slice(15, 27)   # chroma map applied to the power spectrum p = |X|^2
S_BLOCKS = slice(27, 37)  # power of the 10 spectral-entropy blocks
POWER = 37            # total power
DOT = 38              # m_t . m_t-1 (spectral flux)
ROLLOFF = 39          # roll-off bin
MEL = slice(40, 80)   # MFCC filterbank outputs
N_SUMS = 80


def _normalise(x: np.ndarray, out: torch.Tensor) -> None:
    """out = (x - mean) / (max|x - mean| + 1e-10) in out's dtype: pyAudioAnalysis's dc_normalize.

    Mean, min and max come from the float32 input (two passes at half the bytes of float64),
    and rounding is monotonic, so max(hi - mean, mean - lo) is exactly max|x - mean|. The
    division is a multiplication by the reciprocal, 4x faster and 1 unit in the last place
    away; subtracting first keeps each sample's sign exact, which the zero-crossing count needs.
    """
    src = torch.from_numpy(x)
    out.copy_(src)
    stats = src if out.device.type == "cpu" else out
    mean = stats.sum(dtype=torch.float64).item() / x.shape[0]
    lo, hi = (float(v) for v in torch.aminmax(stats))
    out.sub_(mean).mul_(1.0 / (max(hi - mean, mean - lo) + 1e-10))


def _entropy(parts: torch.Tensor, total: torch.Tensor, guard: float) -> torch.Tensor:
    """Entropy of the shares ``parts / (total + guard)``, pyAudioAnalysis's eps guards included."""
    s = parts / (total + guard)[:, None]
    return -(s * torch.log2(s + EPS)).sum(-1)


def _energy_blocks(seg: torch.Tensor, frames: torch.Tensor, win: int, step: int,
                   n_blocks: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """([C, n_blocks] energies of each frame's consecutive blocks, [C] frame energies).

    When the blocks tile the hop (50 ms / 25 ms: 80-sample blocks, a 400-sample hop), each
    block's energy is summed once on the signal rather than once in each of the two frames
    that overlap it. The frame energy includes tail samples that fill no block, as in
    pyAudioAnalysis.
    """
    size = win // n_blocks
    if win % n_blocks == 0 and step % size == 0:
        b = seg.view(-1, size)
        blocks = torch.linalg.vecdot(b, b).unfold(0, n_blocks, step // size)
        return blocks, blocks.sum(-1)
    sq = frames.square()
    return sq[:, : size * n_blocks].unflatten(-1, (n_blocks, size)).sum(-1), sq.sum(-1)


def _crossings(seg: torch.Tensor, n: int, win: int, step: int) -> torch.Tensor:
    """[n] sum of |sign(x[i+1]) - sign(x[i])| within each of the n frames of ``seg``.

    Counted once per sample pair and summed in blocks of gcd(win, step) samples, so a
    frame's count is a sum of whole blocks less the one pair that leaves the frame: each
    pair is counted once instead of once per overlapping frame, and no running sum is needed.
    """
    if seg.device.type == "cpu":  # numpy's int8 ops are several times faster here
        a = seg.numpy()
        s = (a > 0).view(np.int8) - (a < 0).view(np.int8)
        d = np.empty(a.shape[0], dtype=np.int8)
        np.subtract(s[1:], s[:-1], out=d[:-1])
        np.abs(d, out=d)
        d[-1] = 0
        d = torch.from_numpy(d)
    else:
        s = (seg > 0).to(torch.int8) - (seg < 0).to(torch.int8)
        d = torch.nn.functional.pad(s.diff().abs_(), (0, 1))
    g = math.gcd(win, step)
    blocks = d.view(-1, g).sum(-1, dtype=torch.int32)
    return blocks.unfold(0, win // g, step // g)[:n].sum(-1) - d[win - 1::step][:n]


def _rolloff_bins(p: torch.Tensor, block_sums: torch.Tensor, threshold: torch.Tensor,
                  size: int) -> torch.Tensor:
    """[C] number of bins whose cumulative power is <= threshold (the roll-off bin).

    Two levels: the block of ``size`` bins where the cumulative block sums pass the
    threshold, then a running sum inside that block only, instead of one over all bins.
    The sums are grouped differently from numpy's running sum; the difference is rounding
    (1e-16 relative), far below the spacing of the cumulative power between bins.
    """
    thr = threshold[:, None]
    cum_blocks = torch.cumsum(block_sums, dim=-1)
    j = torch.searchsorted(cum_blocks, thr, right=True).clamp_max_(block_sums.shape[1] - 1)
    before = torch.nn.functional.pad(cum_blocks, (1, 0)).gather(1, j)
    inside = p.unflatten(1, (-1, size))[torch.arange(p.shape[0], device=p.device), j[:, 0]]
    inside = torch.cumsum(inside, dim=-1).add_(before)
    return (j * size + torch.searchsorted(inside, thr, right=True))[:, 0]


class _Tables(NamedTuple):
    """Per (rate, window, device, dtype) matrices, so that every per-bin sum is one product.

    The spectrum is used unscaled (|X|, not pyAudioAnalysis's |X| / (win/2)): the scale is
    folded into the filterbank and into the epsilon guards instead, which saves two passes.
    On CPU the products go through numpy's BLAS (OpenBLAS), which multiplies these tall and
    thin float64 matrices about 3x faster than torch's CPU matmul (MKL) does here.
    """

    n_bins: int
    mel_bins: int          # bins past the last MFCC filter's upper edge are all zero
    rolloff_block: int     # bins per block of the two-level roll-off search (divides n_bins)
    chroma_bins: torch.Tensor  # the bins the chroma map reads (71 of 400 at 16 kHz, 50 ms)
    chroma: torch.Tensor   # [len(chroma_bins), 12] the chroma map on those bins
    fbank: torch.Tensor    # [mel_bins, 40] pyAudioAnalysis filterbank / n_bins
    dct: torch.Tensor      # [40, 13] orthonormal DCT-II
    moments: torch.Tensor  # [n_bins, 3] 1, f, f^2 with f = bin frequency / (sr / 2)
    numpy: dict | None     # the same arrays in numpy, for the CPU path

    @classmethod
    def build(cls, sr: int, win: int, device, dtype) -> "_Tables":
        nb = win // 2
        fb = pyaa_mfcc_filterbank(sr, nb).T / nb
        nonzero = np.nonzero(fb.any(axis=1))[0]
        mel_bins = int(nonzero[-1]) + 1 if nonzero.size else nb
        f = np.arange(1, nb + 1) / nb  # pyAudioAnalysis's centroid labels, (k+1)*sr/win Hz
        chroma = pyaa_chroma_matrix(sr, nb).T
        chroma_bins = np.nonzero(chroma.any(axis=1))[0]
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        mats = {"fbank": fb[:mel_bins], "dct": dct2_ortho(40, N_MFCC).T, "chroma": chroma[chroma_bins],
                "moments": np.stack([np.ones(nb), f, f * f], axis=1)}
        mats = {k: np.ascontiguousarray(v, dtype=np_dtype) for k, v in mats.items()}
        mats["chroma_bins"] = chroma_bins
        tensors = {k: torch.as_tensor(v, device=device) for k, v in mats.items()}
        # Roll-off blocks of at most 32 bins; where the 10 spectral-entropy blocks tile the
        # bins, a divisor of their size, so that their sums are sums of roll-off blocks.
        size = nb // 10
        tiled = 10 * size == nb
        rolloff_block = max(d for d in range(1, 33) if (size if tiled else nb) % d == 0)
        cpu = torch.device(device).type == "cpu"
        return cls(nb, mel_bins, rolloff_block, numpy=mats if cpu else None, **tensors)

    def mm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if self.numpy is not None:
            return torch.from_numpy(np.matmul(x.numpy(), self.numpy[name]))
        return x @ getattr(self, name)

    def chroma_of(self, p: torch.Tensor) -> torch.Tensor:
        """[C, 12] chroma map of the power spectrum: a gather of the bins it reads, one product."""
        if self.numpy is not None:
            return torch.from_numpy(np.take(p.numpy(), self.numpy["chroma_bins"], axis=1) @ self.numpy["chroma"])
        return p.index_select(1, self.chroma_bins) @ self.chroma

    def sqrt(self, x: torch.Tensor) -> torch.Tensor:
        if self.numpy is not None:  # numpy's float64 sqrt is vectorised, torch's ~1.6x slower
            return torch.from_numpy(np.sqrt(x.numpy()))
        return x.sqrt()

    def log10(self, x: torch.Tensor) -> torch.Tensor:
        if self.numpy is not None:  # numpy's (SIMD) float64 log10 is ~2.5x faster than torch's
            return torch.from_numpy(np.log10(x.numpy()))
        return x.log10()


def _frame_sums(buf: torch.Tensor, g0: int, g1: int, sums: torch.Tensor, t: _Tables,
                win: int, step: int) -> None:
    """The per-frame sums (see N_SUMS) of grid frames [g0, g1) of ``buf`` into ``sums[:, g0:g1]``.

    Also transforms the frame before g0, for the flux's dot product, so that spans are
    independent and can run on different threads in any order.
    """
    nb = t.n_bins
    lead = 1 if g0 > 0 else 0
    seg = buf[(g0 - lead) * step: (g1 - 1) * step + win]
    frames = seg.unfold(0, win, step)  # view [lead + C, win]
    own = seg[lead * step:]
    out = sums[:, g0:g1]  # rows: one sum each, so every write below is contiguous
    out[ZC] = _crossings(own, g1 - g0, win, step)
    blocks, out[ENERGY] = _energy_blocks(own, frames[lead:], win, step)
    out[E_BLOCKS] = blocks.T
    # |X|^2 from the real and imaginary parts: the complex abs (hypot) is several times
    # slower on CPU. p and m are nb^2 and nb times pyAudioAnalysis's values.
    v = torch.view_as_real(torch.fft.rfft(frames, dim=-1)[:, :nb])
    p = torch.addcmul(v[..., 0].square(), v[..., 1], v[..., 1])
    del v
    m = t.sqrt(p)
    if lead:
        out[DOT] = torch.linalg.vecdot(m[1:], m[:-1])
        p, m = p[1:], m[1:]
    else:
        out[DOT, 1:] = torch.linalg.vecdot(m[1:], m[:-1])
        out[DOT, 0] = 0.0
    out[MOMENTS] = t.mm(m, "moments").T
    out[CHROMA] = t.chroma_of(p).T
    block_power = p.unflatten(1, (-1, t.rolloff_block)).sum(-1)
    total = block_power.sum(-1)
    size = nb // 10  # spectral-entropy blocks; bins of the tail count in the total only
    if 10 * size == nb and size % t.rolloff_block == 0:  # unions of roll-off blocks
        out[S_BLOCKS] = block_power.unflatten(1, (10, -1)).sum(-1).T
    else:
        out[S_BLOCKS] = p[:, : 10 * size].unflatten(1, (10, size)).sum(-1).T
    out[POWER] = total
    # roll-off: the first bin whose cumulative power (+ eps) passes 90 % of the total
    out[ROLLOFF] = _rolloff_bins(p, block_power, 0.90 * total - nb * nb * EPS, t.rolloff_block)
    out[MEL] = t.mm(m[:, :t.mel_bins], "fbank").T


def _features_from_sums(s: torch.Tensor, t: _Tables, win: int) -> torch.Tensor:
    """[G, 34] features of all grid frames from their [N_SUMS, G] sums, as pyAudioAnalysis
    defines them."""
    nb = t.n_bins
    guard = nb * nb * EPS  # pyAudioAnalysis's eps on its |X|^2 / nb^2 scale, on ours
    tiny = torch.finfo(s.dtype).tiny  # turns 0/0 into the 0 that pyAudioAnalysis's branches give
    energy, total = s[ENERGY], s[POWER]
    # Centroid and spread of the max-normalised magnitudes: c = sum(m f / max) / (sum(m / max)
    # + eps) = sum(m f) / (sum(m) + eps max). eps max <= eps sum(m), so the guard changes c by
    # at most 1 unit in the last place and is left out; a silent frame (all 0) gives 0/tiny
    # = 0, as pyAudioAnalysis's branch for it does.
    # spread^2 = (sum m f^2 - 2 c sum m f + c^2 sum m) / den: the cancellation error is about
    # 1e-16 * c^2 <= 1e-16 of the variance's scale, and FFT rounding alone keeps the spread
    # of any frame above ~1e-7, so the loss stays below 1e-9 in absolute terms.
    s0, s1, s2 = s[MOMENTS]
    den = s0.clamp_min(tiny)
    centroid = s1 / den
    spread = ((s2 - 2.0 * centroid * s1 + centroid.square() * s0) / den).clamp_min_(0.0).sqrt_()
    # Spectral flux sum((m_t/S_t - m_t-1/S_t-1)^2) with S = sum(m) + guard, expanded as
    # Q_t/S_t^2 + Q_t-1/S_t-1^2 - 2 (m_t . m_t-1)/(S_t S_t-1) with Q = sum(m^2) = the total
    # power: one pass over the bins instead of four. The cancellation costs ~1e-16 of
    # sum(norm^2) <= 1, nothing next to the flux of speech. Frame 0 compares with itself.
    r = 1.0 / (s0 + guard)
    rq = r.square() * total
    flux = torch.nn.functional.pad(
        (rq[1:] + rq[:-1] - 2.0 * r[1:] * r[:-1] * s[DOT, 1:]).clamp_min_(0.0), (1, 0))
    mfcc = t.mm(t.log10(s[MEL].T + EPS), "dct")
    chroma = (s[CHROMA] / total.clamp_min(tiny)).T
    chroma_std = (chroma - chroma.mean(-1, keepdim=True)).square_().mean(-1).sqrt_()
    return torch.cat([(s[ZC] / (2.0 * (win - 1.0)))[:, None], (energy / win)[:, None],
                      _entropy(s[E_BLOCKS].T, energy, EPS)[:, None], centroid[:, None], spread[:, None],
                      _entropy(s[S_BLOCKS].T, total, guard)[:, None], flux[:, None],
                      (s[ROLLOFF] / nb)[:, None], mfcc, chroma, chroma_std[:, None]], dim=1)


# Frames per span of work: small enough that a span's intermediates (~16 KB per frame)
# stay in cache and that a batch splits into several spans per thread, large enough that
# the fixed cost of a span's few dozen operations stays small (measured on 2 cores: 256-1024
# equally good, 64 about 1.5x slower).
SPAN_FRAMES = 512


def _spans(n: int, workers: int) -> list[tuple[int, int]]:
    size = max(128, min(SPAN_FRAMES, -(-n // (4 * workers))))
    return [(a, min(a + size, n)) for a in range(0, n, size)]


_BLAS = None


def _blas():
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController
        _BLAS = ThreadpoolController()
    return _BLAS


@contextmanager
def _single_threaded_ops(device: torch.device):
    """Each torch op and BLAS call on one thread while the CPU backend runs.

    The parallelism is across spans of frames instead (``_worker_pool``). This work is a
    long series of operations of 0.1-1 ms; split across OpenMP threads, each ends in a
    barrier where the threads wait (spinning, by default) for a teammate that a loaded node
    may have descheduled: the old code spent 74 % of its CPU time there with 2 threads and
    ran 5-16x slower than with 1. Everything of a batch runs inside this, the buffer
    allocation included: a single 2-thread op would leave OpenMP's idle thread spinning on
    a core the workers need.
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        with _blas().limit(limits=1, user_api="blas"):
            yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


@contextmanager
def _worker_pool(workers: int):
    """A ``run(fn, args)`` that maps fn over args on ``workers`` threads (inline for 1).

    Threads, not processes: every step of the work is a numpy or torch call that releases
    the GIL while it runs. Tasks are taken from a shared queue, so a thread that the OS
    deschedules (a loaded node) delays only its own task, never the others.
    """
    if workers <= 1:
        def run(fn, args):
            for a in args:
                fn(a)
        yield run
        return
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(workers, thread_name_prefix="lld") as pool:
        def run(fn, args):
            for _ in pool.map(fn, args):  # re-raises a task's exception here
                pass
        yield run


def _groups(sizes: list[int], n: int) -> list[range]:
    """Consecutive index ranges of about equal total size, about n of them."""
    target = sum(sizes) / n
    groups, start, acc = [], 0, 0
    for i, size in enumerate(sizes):
        if acc and acc + size > target:
            groups.append(range(start, i))
            start, acc = i, 0
        acc += size
    return groups + [range(start, len(sizes))]


class _WorkerChoice:
    """Runs each batch on 1 or on n workers, whichever has been faster per frame lately.

    Spreading spans over threads helps only where a core is idle: on a shared node the
    second thread mostly competes for the same core, the shared cache and the GIL, and
    then n workers were up to 1.4x slower than one (measured on the 2-core development
    machine under load), while beside a CPU-bound neighbour they were 1.6x faster. The
    output is identical either way, so the choice is made from measurements: each option
    is timed on real batches (an exponential average of seconds per frame), n workers are
    used only while they are at least ``margin`` faster (one worker leaves the other cores
    to the rest of the node, and the margin keeps timing noise from flipping the choice),
    and the option not in use is re-timed now and then. Re-timing the losing option costs its
    slowdown on that batch, so the interval starts at ``explore`` batches and doubles after
    each re-timing that leaves the choice as it was (up to ``max_interval``); when the choice
    flips it drops back to ``explore``, so a change of load is noticed within a few dozen
    batches while a steady one costs ~1/max_interval of the time (with a fixed interval of 16
    the re-timing alone made 2 threads 2-3 % slower than 1 in benchmarks/bench_lld.py).
    Batches of fewer than ``min_frames`` frames run on one worker and are not timed.
    """

    def __init__(self, explore: int = 16, min_frames: int = 512, smoothing: float = 0.3, margin: float = 0.1,
                 max_interval: int = 256):
        self.explore, self.min_frames, self.smoothing, self.margin = explore, min_frames, smoothing, margin
        self.max_interval = max(explore, max_interval)
        self.seconds_per_frame: dict[int, float] = {}
        self.batches = 0
        self.interval = explore  # batches until the option not in use is re-timed
        self.next_check = explore
        self.best: int | None = None
        self.used: dict[int, int] = {}  # workers -> batches run on them (for benchmarks, logs)

    def pick(self, n: int, frames: int) -> int:
        w = self._pick(n, frames)
        self.used[w] = self.used.get(w, 0) + 1
        return w

    def _pick(self, n: int, frames: int) -> int:
        if n <= 1 or frames < self.min_frames:
            return 1
        for w in (n, 1):
            if w not in self.seconds_per_frame:
                return w
        self.batches += 1
        rate = self.seconds_per_frame
        best = n if rate[n] < (1.0 - self.margin) * rate[1] else 1
        if self.best is not None and best != self.best:  # the choice flipped: watch closely again
            self.interval = self.explore
            self.next_check = self.batches + self.explore - 1
        self.best = best
        if self.batches >= self.next_check:
            self.next_check = self.batches + self.interval
            self.interval = min(2 * self.interval, self.max_interval)
            return 1 if best == n else n
        return best

    def record(self, workers: int, n: int, frames: int, seconds: float) -> None:
        if n <= 1 or frames < self.min_frames:
            return
        rate = seconds / frames
        old = self.seconds_per_frame.get(workers)
        self.seconds_per_frame[workers] = rate if old is None else old + self.smoothing * (rate - old)


@register("lld")
class PyAudioAnalysisLLD(Extractor):
    """34 pyAudioAnalysis short-term features per 50 ms frame, 25 ms step, no deltas. [T, 34]

    params:
      backend    "torch" (default, batched, CPU or GPU) or "pyaudioanalysis" (the library
                 itself, one utterance at a time on CPU: the reference).
      win, step  seconds (0.050, 0.025 as in Boigne et al.).
      precision  "float64" (default) or "float32" for the torch backend. float64 matches the
                 reference to ~1e-6 of each feature's range on every frame (~6e-8, the float32
                 output rounding, on voiced ones); float32 is faster but diverges on
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
        self._geometries: dict = {}
        self._workers = _WorkerChoice()
        self._geometry(16000)  # fail on a bad window now, not after reading the corpus

    @property
    def dim(self) -> int:
        return N_FEATURES

    @property
    def feature_names(self) -> list[str]:
        return list(FEATURE_NAMES)

    def _geometry(self, sr: int) -> tuple[int, int]:
        if sr in self._geometries:
            return self._geometries[sr]
        win = seconds_to_samples("lld", "win", self.win_s, sr)
        step = seconds_to_samples("lld", "step", self.step_s, sr)
        if win < 20:
            raise ConfigError(f"lld: params.win={self.win_s} s gives {win} samples; need at least 20 "
                              f"(energy entropy splits a frame into 10 blocks)")
        pyaa_chroma_matrix(sr, win // 2)  # raises for windows too short for the chroma map
        self._geometries[sr] = win, step
        return win, step

    def _constants(self, sr: int, win: int, device, dtype) -> "_Tables":
        key = (sr, win, str(device), dtype)
        if key not in self._tables:
            self._tables[key] = _Tables.build(sr, win, device, dtype)
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
        dev = torch.device(self.device)
        dtype = torch.float64 if self.precision == "float64" else torch.float32
        tables = self._constants(sr, win, dev, dtype)
        lengths = [max(int(np.shape(x)[0]), win) for x in items]  # short ones padded to one window
        counts = [n_frames(n, win, step) for n in lengths]
        # Every utterance starts on the frame grid of one shared buffer, so the frames of the
        # whole batch are one strided view: no padding to the longest utterance, and an
        # utterance's frames cannot depend on its batch partners. The grid frames that
        # straddle two utterances (about one per utterance) are computed and dropped.
        first = np.zeros(len(items) + 1, dtype=np.int64)  # grid frame of each utterance's start
        for i, n in enumerate(lengths):
            first[i + 1] = first[i] + -(-n // step)
        n_grid = n_frames(int(first[-1]) * step, win, step)

        def normalise(group: range) -> None:
            for i in group:
                _normalise_one(i)

        def _normalise_one(i: int) -> None:
            start, stop = int(first[i]) * step, int(first[i + 1]) * step
            seg = buf[start: start + lengths[i]]
            buf[start + lengths[i]: stop] = 0.0  # the gap up to the next utterance
            x = np.ascontiguousarray(items[i], dtype=np.float32)
            if lengths[i] > x.shape[0]:  # padded before normalising, as the reference backend
                x = np.concatenate([x, np.zeros(lengths[i] - x.shape[0], np.float32)])
            _normalise(x, seg)

        def frames(span: tuple[int, int]) -> None:
            _frame_sums(buf, span[0], span[1], sums, tables, win, step)

        threads = self.workers()
        workers = self._workers.pick(threads, n_grid)
        started = time.perf_counter()
        # Everything inside: one torch op run on 2 OpenMP threads here would leave the idle
        # OpenMP thread spinning on a core the workers need.
        with _single_threaded_ops(dev):
            buf = torch.empty(int(first[-1]) * step, device=dev, dtype=dtype)
            sums = torch.empty((N_SUMS, n_grid), device=dev, dtype=dtype)
            with _worker_pool(workers) as run:
                run(normalise, _groups(lengths, 4 * workers))
                run(frames, _spans(n_grid, workers))
            out = _features_from_sums(sums, tables, win)
            out[torch.as_tensor(first[:-1], device=dev), 6] = 0.0  # first frames: flux 0
            out = out.to(torch.float32).cpu().numpy()
        self._workers.record(workers, threads, n_grid, time.perf_counter() - started)
        return [out[f:f + n] for f, n in zip(first.tolist(), counts)]

    def workers(self) -> int:
        """Threads the CPU backend may use: torch's intra-op thread count, which
        ``set_threads`` sets to the job's ``--threads``; 1 on a GPU. Each batch runs on
        1 or on all of them, whichever is faster here (``_WorkerChoice``)."""
        return max(1, torch.get_num_threads()) if torch.device(self.device).type == "cpu" else 1

    def info(self) -> dict:
        # The torch backend reproduces a pyAudioAnalysis version, so that version pins it too.
        libs = ("torch", "pyAudioAnalysis") if self.backend == "torch" else ("pyAudioAnalysis", "numpy", "scipy")
        v = versions(*libs)
        return {"backend": self.backend, "precision": self.precision, "versions": v,
                "feature_names": list(FEATURE_NAMES)}

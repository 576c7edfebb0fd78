"""40 log-Mel filterbank energies + log energy + pitch + NCCF (Li et al. 2020). [T, 43]

The paper lists "40 dimensional Log-MFBs, pitch and energy", 40 ms windows with a 10 ms
shift, pitch from Ghahremani et al. (2014, Kaldi's pitch tracker) "in which the NCCF and
pitch (f0) are included for each frame", and an encoder whose input has 43 channels. We
read 43 as 40 log-Mel + log energy + F0 + NCCF, which accounts for every feature the text
names. The other reading (Kaldi's post-processed triple: probability of voicing, normalised
log pitch, delta pitch, with no energy) would contradict both "energy" and the paper's "we
do not perform any per-speaker/sample normalization" (Kaldi's log pitch is normalised by a
moving per-utterance mean), so we did not choose it. ``use_energy: false`` gives [T, 42].

Columns: 0-39 log-Mel (natural log, Kaldi fbank), 40 log frame energy (Kaldi raw energy),
41 F0 (Hz by default, natural log with ``pitch_unit: log``), 42 NCCF at the chosen lag.

Kaldi's own pitch extractor (``torchaudio.functional.compute_kaldi_pitch``) was removed from
torchaudio, so the pitch here is our own vectorised NCCF tracker. It keeps the idea of the
paper's method (normalised cross-correlation over the F0 lag range after a 1 kHz low-pass)
but picks the best lag per frame independently, without Kaldi's Viterbi path search over
frames: it is cheaper and batch-friendly, at the cost of occasional single-frame octave
jumps, which the NCCF column flags as low-confidence.
"""
from __future__ import annotations

import math

import torch

from ser_pipeline.errors import ConfigError
from ser_pipeline.features.base import Extractor, register
from ser_pipeline.features.spectrogram import (check_batch, choice, chunk_size, n_frames, pad_batch,
                                               parse_config, positive, seconds_to_samples, to_tensor,
                                               versions)

# Kaldi reads 16-bit wav files as integers, so its log energies are those of int16-scaled
# samples; scaling our [-1, 1] floats the same way makes the numbers comparable with a Kaldi
# recipe (it only shifts the logs by a constant, the features carry the same information).
INT16_SCALE = 32768.0


def lowpass_kernel(cutoff_hz: float, sr: int, device, dtype) -> torch.Tensor:
    """Hann-windowed sinc low-pass, 8 lobes each side: sharp enough to keep formants above
    1 kHz from dominating the correlation, short enough to be cheap as a convolution."""
    half = int(math.ceil(8 * sr / (2.0 * cutoff_hz)))
    n = torch.arange(-half, half + 1, device=device, dtype=torch.float64)
    fc = cutoff_hz / sr
    h = 2 * fc * torch.sinc(2 * fc * n) * torch.hann_window(2 * half + 3, periodic=False,
                                                           device=device, dtype=torch.float64)[1:-1]
    return (h / h.sum()).to(dtype)


def fir_same(y: torch.Tensor, h: torch.Tensor, n_fft: int = 8192) -> torch.Tensor:
    """Linear convolution of each row of ``y`` [B, L] with the odd-length ``h``, centred
    ('same' length, zeros outside), by FFT overlap-add in blocks.

    torch's conv1d is slow for one long single-channel signal on CPU (oneDNN took seconds
    per minute of audio); FFT blocks are O(L log n_fft), bounded in memory, and free of the
    TF32 rounding cuDNN may apply to float32 convolutions on GPUs.
    """
    b, length = y.shape
    k = h.shape[0]
    n_fft = max(n_fft, 1 << (2 * k - 1).bit_length())
    lb = n_fft - k + 1
    nblk = -(-length // lb)
    blocks = torch.nn.functional.pad(y, (0, nblk * lb - length)).view(b, nblk, lb)
    res = torch.fft.irfft(torch.fft.rfft(blocks, n=n_fft) * torch.fft.rfft(h, n=n_fft), n=n_fft)
    out = y.new_zeros((b, (nblk + 1) * lb))
    out[:, : nblk * lb] = res[..., :lb].reshape(b, -1)
    out[:, lb:].view(b, nblk, lb)[..., : k - 1] += res[..., lb:]
    half = k // 2
    return out[:, half:half + length]


def nccf_pitch(x: torch.Tensor, counts: list[int], sr: int, win: int, hop: int, f0_min: float,
               f0_max: float, lowpass_hz: float, octave_cost: float) -> tuple[torch.Tensor, torch.Tensor]:
    """F0 (Hz) and NCCF per frame for a zero-padded batch ``x`` [B, L].

    Frame t is analysed on a segment of win + max_lag samples centred on the centre of the
    fbank frame t (sample t*hop + win/2), so both feature streams describe the same instant.
    For each lag l in [sr/f0_max, sr/f0_min], with s the low-passed, mean-removed segment:
        nccf(l) = sum_n s[n] s[n+l] / sqrt((sum_n s[n]^2 + E) * (sum_n s[n+l]^2 + E)),  n < win
    computed for all lags at once by FFT; E is a small energy floor (below). On digital
    silence every lag scores 0, so F0 falls to f0_max (the octave cost's favourite) with an
    NCCF of 0: consumers should read F0 only where the NCCF is high. The best lag maximises nccf(l) minus
    ``octave_cost`` per octave of lag (Boersma's octave cost: at equal correlation the
    shorter period wins, which removes most period-doubling errors), then is refined by
    parabolic interpolation, because one sample of lag is 2.5 % of F0 at 400 Hz.
    """
    dev = x.device
    lag_lo = max(1, int(math.floor(sr / f0_max)))
    lag_hi = int(math.ceil(sr / f0_min))
    seg = win + lag_hi + 1  # one lag past the range, for the interpolation at its edge
    left = seg // 2 - win // 2
    t_max = max(counts)
    need = (t_max - 1) * hop + seg
    y = x.new_zeros((x.shape[0], max(need, left + x.shape[1])))
    y[:, left:left + x.shape[1]] = x
    if lowpass_hz:
        h = lowpass_kernel(lowpass_hz, sr, dev, y.dtype)
        y = fir_same(y, h)
    segs = y.unfold(1, seg, hop)[:, :t_max]  # view [B, T, seg]
    n_fft = 1 << (seg - 1).bit_length()
    lags = torch.arange(lag_lo, lag_hi + 1, device=dev)
    bias = octave_cost * torch.log2(lags.to(y.dtype) / lag_lo)
    # Energy floor of a -80 dBFS signal (RMS 1e-4 of full scale): near-silent frames get an
    # NCCF near 0 instead of the arbitrary, often high, correlation of rounding noise or
    # filter ringing. Kaldi adds a similar "ballast" for the same reason.
    floor = win * 1e-8
    f0 = torch.empty(segs.shape[:2], device=dev, dtype=y.dtype)
    nccf = torch.empty_like(f0)
    step = chunk_size(x.shape[0], 3 * n_fft)
    for t0 in range(0, t_max, step):
        s = segs[:, t0:t0 + step]
        s = s - s.mean(-1, keepdim=True)
        head = torch.fft.rfft(s[..., :win], n=n_fft)
        full = torch.fft.rfft(s, n=n_fft)
        r = torch.fft.irfft(head.conj() * full, n=n_fft)[..., lag_lo:lag_hi + 2]
        # Energies in float64: differences of a running sum lose the quiet end otherwise.
        cs = torch.nn.functional.pad(torch.cumsum(s.double().square(), -1), (1, 0))
        e0 = cs[..., win:win + 1]
        el = cs[..., lag_lo + win:lag_hi + win + 2] - cs[..., lag_lo:lag_hi + 2]
        c = (r.double() / torch.sqrt((e0 + floor) * (el + floor))).to(y.dtype)  # lags lo..hi+1
        best = torch.argmax(c[..., :-1] - bias, dim=-1, keepdim=True)  # index into lo..hi
        y0 = c.gather(-1, best)
        ym = c.gather(-1, (best - 1).clamp_min(0))
        yp = c.gather(-1, best + 1)
        curv = ym - 2 * y0 + yp
        ok = (best > 0) & (curv < 0)
        delta = torch.where(ok, 0.5 * (ym - yp) / torch.where(ok, curv, torch.ones_like(curv)),
                            torch.zeros_like(curv)).clamp(-0.5, 0.5)
        peak = y0 - 0.25 * (ym - yp) * delta
        f0[:, t0:t0 + step] = (sr / (best + lag_lo + delta))[..., 0]
        nccf[:, t0:t0 + step] = peak.clamp(-1.0, 1.0)[..., 0]
    return f0, nccf


@register("fbank_pitch")
class FbankPitch(Extractor):
    """Kaldi-style log-Mel filterbank (torchaudio.compliance.kaldi.fbank) + energy + F0 + NCCF.

    params (defaults): num_mel_bins 40, win 0.040 s, hop 0.010 s, use_energy true,
    f0_min 50 Hz, f0_max 400 Hz, pitch_unit "hz" | "log", lowpass_hz 1000 (0 = off),
    octave_cost 0.01. Dither is 0 (Kaldi's default is 1) so features are deterministic.
    """

    supports_gpu = True
    frame_rate = 100.0
    DEFAULTS = {"num_mel_bins": 40, "win": 0.040, "hop": 0.010, "use_energy": True,
                "f0_min": 50.0, "f0_max": 400.0, "pitch_unit": "hz", "lowpass_hz": 1000.0,
                "octave_cost": 0.01}

    def __init__(self, config: dict, device: str = "cpu"):
        super().__init__(config, device)
        c = parse_config("fbank_pitch", self.config, self.DEFAULTS)
        n = "fbank_pitch"
        self.num_mel_bins = positive(n, "num_mel_bins", c["num_mel_bins"], integer=True)
        self.win_s = positive(n, "win", c["win"])
        self.hop_s = positive(n, "hop", c["hop"])
        if not isinstance(c["use_energy"], bool):
            raise ConfigError(f"{n}: params.use_energy must be true or false, got {c['use_energy']!r}")
        self.use_energy = c["use_energy"]
        self.f0_min = positive(n, "f0_min", c["f0_min"])
        self.f0_max = positive(n, "f0_max", c["f0_max"])
        if self.f0_min >= self.f0_max:
            raise ConfigError(f"{n}: params.f0_min ({self.f0_min}) must be below params.f0_max ({self.f0_max})")
        self.pitch_unit = choice(n, "pitch_unit", c["pitch_unit"], ("hz", "log"))
        lp = c["lowpass_hz"]
        self.lowpass_hz = 0.0 if lp in (0, None) else positive(n, "lowpass_hz", lp)
        oc = c["octave_cost"]
        if not isinstance(oc, (int, float)) or isinstance(oc, bool) or not (0 <= oc < 1):
            raise ConfigError(f"{n}: params.octave_cost must be in [0, 1), got {oc!r}")
        self.octave_cost = float(oc)
        self.frame_rate = 1.0 / self.hop_s
        self._geometry(16000)

    def _geometry(self, sr: int) -> tuple[int, int]:
        n = "fbank_pitch"
        win = seconds_to_samples(n, "win", self.win_s, sr)
        hop = seconds_to_samples(n, "hop", self.hop_s, sr)
        if self.f0_max >= sr / 2:
            raise ConfigError(f"{n}: params.f0_max={self.f0_max} Hz must be below {sr / 2} Hz")
        if self.lowpass_hz and self.lowpass_hz >= sr / 2:
            raise ConfigError(f"{n}: params.lowpass_hz={self.lowpass_hz} Hz must be below {sr / 2} Hz")
        if self.lowpass_hz and self.lowpass_hz < self.f0_max:
            raise ConfigError(f"{n}: params.lowpass_hz={self.lowpass_hz} Hz would remove F0s up to "
                              f"params.f0_max={self.f0_max} Hz")
        if sr / self.f0_min > 4 * win:
            raise ConfigError(f"{n}: params.f0_min={self.f0_min} Hz has a period longer than four "
                              f"windows ({self.win_s} s); raise f0_min or win")
        return win, hop

    @property
    def dim(self) -> int:
        return self.num_mel_bins + int(self.use_energy) + 2

    @torch.no_grad()
    def extract_batch(self, items: list, sample_rate: int = 16000) -> list:
        import torchaudio.compliance.kaldi as kaldi

        if not items:
            return []
        check_batch(items, sample_rate)
        sr = int(sample_rate)
        win, hop = self._geometry(sr)
        dev = torch.device(self.device)
        sigs = [to_tensor(x, dev, torch.float32) for x in items]
        counts = [n_frames(s.shape[0], win, hop) for s in sigs]
        x = pad_batch(sigs, min_len=win)
        f0, nccf = nccf_pitch(x, counts, sr, win, hop, self.f0_min, self.f0_max, self.lowpass_hz,
                              self.octave_cost)
        if self.pitch_unit == "log":
            f0 = torch.log(f0)
        outs = []
        # Kaldi fbank frames are independent of each other (per-frame DC removal,
        # pre-emphasis and energy, no dither), so long inputs go through in pieces of
        # ``piece`` frames (41 s, ~16 MB per intermediate) with identical results and bounded
        # memory; each call rebuilds the Mel matrix, so pieces should not be much smaller.
        piece = 4096
        for i, n in enumerate(counts):
            wave = x[i, : max(win, sigs[i].shape[0])] * INT16_SCALE
            fbs = []
            for t0 in range(0, n, piece):
                t1 = min(n, t0 + piece)
                # Lengths in ms that torchaudio truncates back to samples: half a sample of
                # slack stops 40 ms * 16 kHz from landing on 639.999 and losing a sample.
                fbs.append(kaldi.fbank(wave[None, t0 * hop:(t1 - 1) * hop + win], num_mel_bins=self.num_mel_bins,
                                       frame_length=(win + 0.5) * 1000.0 / sr, frame_shift=(hop + 0.5) * 1000.0 / sr,
                                       sample_frequency=float(sr), dither=0.0, energy_floor=0.0,
                                       use_energy=self.use_energy, snip_edges=True))
            fb = torch.cat(fbs, dim=0)
            if fb.shape[0] != n:  # the two framings must agree, or the columns would drift apart
                raise RuntimeError(f"fbank gave {fb.shape[0]} frames, pitch framing {n}")
            if self.use_energy:  # Kaldi puts energy first; we keep the 40 Mel bands at 0..39
                fb = torch.cat([fb[:, 1:], fb[:, :1]], dim=1)
            outs.append(torch.cat([fb, f0[i, :n, None], nccf[i, :n, None]], dim=1)
                        .to(torch.float32).cpu().numpy())
        return outs

    def info(self) -> dict:
        return {"versions": versions("torch", "torchaudio"),
                "columns": (f"0-{self.num_mel_bins - 1} log-Mel"
                            + (f", {self.num_mel_bins} log-energy" if self.use_energy else "")
                            + f", {self.dim - 2} F0 ({self.pitch_unit}), {self.dim - 1} NCCF")}

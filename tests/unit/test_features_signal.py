"""Signal-feature extractors: shapes, frame rates, LLD parity with pyAudioAnalysis, batching
invariance, speed perturbation, eGeMAPS and config errors.

Speech comes from espeak-ng, generated here, so the tests need no corpus and still see
voiced/unvoiced transitions and silence like real speech.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from ser_pipeline.errors import ConfigError
from ser_pipeline.features.base import available, get_extractor
from ser_pipeline.features.perturb import speed_perturb

SR = 16000
SENTENCES = {
    "short": "Hello there.",
    "long": "I cannot believe you did that again. Please, just leave me alone for a while.",
}


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); it synthesises the test speech")
    out = {}
    d = tmp_path_factory.mktemp("espeak")
    for key, text in SENTENCES.items():
        wav = d / f"{key}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        x, sr = sf.read(str(wav), dtype="float64")
        assert sr == 22050
        out[key] = resample_poly(x, 320, 441).astype(np.float32)  # 22050 Hz -> 16 kHz
    assert len(out["long"]) > 3 * SR > 2 * len(out["short"])
    # Exactly 2.0 s, for the frame-count checks.
    out["two_seconds"] = out["long"][: 2 * SR].copy()
    return out


FRAMED = ["lld", "ma_spectrogram", "log_spectrogram", "fbank_pitch"]
# name -> (dim, frame_rate, frames for 2.0 s, window in samples)
EXPECTED = {
    "lld": (34, 40.0, 1 + (32000 - 800) // 400, 800),
    "ma_spectrogram": (400, 100.0, 1 + (32000 - 640) // 160, 640),
    "log_spectrogram": (201, 100.0, 1 + (32000 - 400) // 160, 400),
    "fbank_pitch": (43, 100.0, 1 + (32000 - 640) // 160, 640),
    "egemaps": (88, None, 1, None),
}


def test_all_registered():
    assert set(EXPECTED) <= set(available())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shape_and_frame_rate(speech, name):
    dim, rate, frames, _ = EXPECTED[name]
    ex = get_extractor(name, {})
    assert ex.dim == dim
    assert ex.frame_rate == rate
    (out,) = ex.extract_batch([speech["two_seconds"]], SR)
    assert out.shape == (frames, dim)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    assert isinstance(ex.info(), dict) and ex.info()


@pytest.mark.parametrize("name", FRAMED)
def test_shorter_than_one_window_gives_one_frame(speech, name):
    *_, win = EXPECTED[name]
    (out,) = get_extractor(name, {}).extract_batch([speech["short"][: win // 2]], SR)
    assert out.shape[0] == 1 and np.isfinite(out).all()


@pytest.mark.parametrize("name", FRAMED)
def test_batching_does_not_change_frames(speech, name):
    """An utterance's frames must not depend on its batch partners (padding, chunking)."""
    ex = get_extractor(name, {})
    (alone,) = ex.extract_batch([speech["short"]], SR)
    batched = ex.extract_batch([speech["long"], speech["short"], speech["two_seconds"]], SR)
    assert batched[1].shape == alone.shape
    np.testing.assert_allclose(batched[1], alone, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ LLD parity
def _reference_lld(x: np.ndarray, win: float = 0.050, step: float = 0.025) -> np.ndarray:
    from pyAudioAnalysis import ShortTermFeatures

    feats, _ = ShortTermFeatures.feature_extraction(x.astype(np.float64) * 32768.0, SR,
                                                    round(win * SR), round(step * SR), deltas=False)
    return feats.T


def _scaled_errors(ours: np.ndarray, ref: np.ndarray):
    """Per-feature max |error| over frames, relative to that feature's range on the utterance
    (its largest |value|; absolute where the reference feature is 0 on every frame, as on
    digital silence), on all frames and on voiced frames (energy above 1e-3 of the maximum)."""
    scale = np.abs(ref).max(axis=0)
    scale[scale == 0] = 1.0
    err = np.abs(ours.astype(np.float64) - ref)
    voiced = ref[:, 1] > 1e-3 * ref[:, 1].max()
    voiced_err = err[voiced].max(axis=0) / scale if voiced.any() else np.zeros(ref.shape[1])
    return err.max(axis=0) / scale, voiced_err, voiced


@pytest.mark.parametrize("key", ["long", "short"])
def test_lld_matches_pyaudioanalysis(speech, key):
    """Documented tolerance (float64, the default): every feature within 5e-6 of its range on
    every frame, and within 2e-7 on voiced frames. Measured: 6e-7 and 5e-8; the float32
    output rounding alone is 6e-8. The residual on silent frames is FFT rounding noise
    (1e-17) meeting pyAudioAnalysis's 2.2e-16 guard inside log10 for the MFCCs."""
    x = speech[key]
    ref = _reference_lld(x)
    ours = get_extractor("lld", {}).extract_batch([x], SR)[0]
    assert ours.shape == ref.shape  # same frame count: whole frames only, tail dropped
    all_err, voiced_err, voiced = _scaled_errors(ours, ref)
    assert voiced.sum() > 10
    assert all_err.max() < 5e-6, all_err
    assert voiced_err.max() < 2e-7, voiced_err
    # The first frame's flux is 0 in both (pyAudioAnalysis compares it with itself).
    assert ours[0, 6] == 0.0 == ref[0, 6]


def _hard_signals(speech) -> dict:
    """Signals that stress each reduction: digital silence (every 0/0 guard), a pure tone
    (narrow band: spread cancellation, roll-off inside one block), white noise (roll-off in
    the top bins), speech around a silent gap, exactly one window. The tone sits between
    DFT bins: a bin-centred one leaves every other bin at FFT rounding noise (1e-17), where
    pyAudioAnalysis's 2.2e-16 guard makes the MFCCs depend on which FFT library rounded
    them (up to 7e-5 of their range); silence shows the same effect at 3e-8."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    return {
        "silence": np.zeros(SR // 2, np.float32),
        "tone": (0.5 * np.sin(2 * np.pi * 443.3 * t)).astype(np.float32),
        "noise": (0.1 * rng.standard_normal(SR)).astype(np.float32),
        "gap": np.concatenate([speech["short"], np.zeros(SR // 4, np.float32), speech["short"]]),
        "one_window": speech["long"][8000:8800].copy(),
        "long": speech["long"],
    }


def test_lld_batch_matches_pyaudioanalysis_on_hard_signals(speech):
    """One batch (several spans of frames, utterances of every kind side by side) against the
    library run on each utterance alone. Errors are relative to each feature's range over
    the whole set, as for a corpus: on a pure tone some features (spectral entropy, chroma
    of empty pitch classes, flux between identical frames) are rounding noise of 1e-14 to
    1e-30, which no float64 implementation reproduces digit for digit."""
    signals = _hard_signals(speech)
    outs = get_extractor("lld", {}).extract_batch(list(signals.values()), SR)
    assert sum(len(o) for o in outs) > 2 * 128  # several spans of work (128 frames at least)
    refs = [_reference_lld(x) for x in signals.values()]
    scale = np.abs(np.concatenate(refs)).max(axis=0)
    for name, ours, ref in zip(signals, outs, refs):
        assert ours.shape == ref.shape, name
        err = np.abs(ours.astype(np.float64) - ref).max(axis=0) / scale
        assert err.max() < 5e-6, (name, err)
        assert ours[0, 6] == 0.0, name
    silence = outs[0]
    assert np.all(silence[:, :8] == 0.0) and np.all(silence[:, 21:] == 0.0)
    np.testing.assert_allclose(silence[:, 8:21], refs[0][:, 8:21], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("win,step", [(0.030, 0.010), (0.0255, 0.0125)])
def test_lld_other_geometries_match_pyaudioanalysis(speech, win, step):
    """Windows whose blocks do not tile the hop (the generic energy path), a bin count not a
    multiple of 10 (spectral-entropy tail bins) and an odd roll-off block size (17)."""
    x = speech["long"]
    ours = get_extractor("lld", {"win": win, "step": step}).extract_batch([x], SR)[0]
    ref = _reference_lld(x, win, step)
    assert ours.shape == ref.shape
    all_err, voiced_err, _ = _scaled_errors(ours, ref)
    assert all_err.max() < 5e-6, all_err
    assert voiced_err.max() < 2e-7, voiced_err


@pytest.mark.parametrize("n", [800, 801, 1199, 1200, 1201, 4000])
def test_lld_frame_count_matches_pyaudioanalysis(speech, n):
    x = speech["long"][8000:8000 + n]
    assert get_extractor("lld", {}).extract_batch([x], SR)[0].shape == _reference_lld(x).shape


def test_lld_shorter_than_a_window_matches_reference_backend(speech):
    x = speech["long"][8000:8500]
    ours = get_extractor("lld", {}).extract_batch([x], SR)[0]
    ref = get_extractor("lld", {"backend": "pyaudioanalysis"}).extract_batch([x], SR)[0]
    assert ours.shape == ref.shape == (1, 34)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_lld_float32_matches_on_voiced_frames(speech):
    x = speech["long"]
    ref = _reference_lld(x)
    ours = get_extractor("lld", {"precision": "float32"}).extract_batch([x], SR)[0]
    _, voiced_err, _ = _scaled_errors(ours, ref)
    assert voiced_err.max() < 2e-5, voiced_err


def test_lld_reference_backend_is_pyaudioanalysis(speech):
    x = speech["short"]
    ours = get_extractor("lld", {"backend": "pyaudioanalysis"}).extract_batch([x], SR)[0]
    np.testing.assert_array_equal(ours, _reference_lld(x).astype(np.float32))


# ------------------------------------------------------- LLD building blocks
@pytest.mark.parametrize("win,step", [(800, 400), (10, 4), (7, 3), (12, 12), (9, 6)])
def test_lld_crossing_counts_match_a_direct_count(win, step):
    from ser_pipeline.features.lld import _crossings

    rng = np.random.default_rng(win * 100 + step)
    x = rng.standard_normal(50 * step + win)
    x[rng.random(x.shape) < 0.2] = 0.0  # exact zeros count 1 per step, as sign() gives them
    n = 1 + (len(x) - win) // step
    direct = [np.abs(np.diff(np.sign(x[t * step:t * step + win]))).sum() for t in range(n)]
    got = _crossings(torch.from_numpy(x), n, win, step)
    np.testing.assert_array_equal(got.numpy(), direct)


def test_lld_two_level_rolloff_matches_a_running_sum():
    from ser_pipeline.features.lld import _rolloff_bins

    rng = np.random.default_rng(1)
    p = rng.integers(0, 5, size=(300, 400)).astype(np.float64)  # integers: every sum exact
    p[:20] = 0.0
    cum = np.cumsum(p, axis=1)
    # thresholds on exact ties, between bins, below 0 and at the total
    thr = np.concatenate([cum[np.arange(100), rng.integers(0, 400, 100)],
                          cum[100:200, -1] * rng.random(100), -np.ones(50), cum[250:, -1]])
    expected = (cum <= thr[:, None]).sum(axis=1)
    pt = torch.from_numpy(p)
    for size in (20, 16, 1, 400):
        got = _rolloff_bins(pt, pt.unflatten(1, (-1, size)).sum(-1), torch.from_numpy(thr), size)
        np.testing.assert_array_equal(got.numpy(), expected)


def test_lld_energy_blocks_fast_path_matches_generic():
    from ser_pipeline.features.lld import _energy_blocks

    x = torch.from_numpy(np.random.default_rng(2).standard_normal(40 * 400 + 800))
    frames = x.unfold(0, 800, 400)
    fast = _energy_blocks(x, frames, 800, 400)
    sq = frames.square()
    np.testing.assert_allclose(fast[0].numpy(), sq.view(-1, 10, 80).sum(-1).numpy(), rtol=1e-13)
    np.testing.assert_allclose(fast[1].numpy(), sq.sum(-1).numpy(), rtol=1e-13)


# -------------------------------------------------------------- other features
def test_ma_spectrogram_has_a_10_hz_grid():
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    (out,) = get_extractor("ma_spectrogram", {}).extract_batch([tone], SR)
    assert out.shape[1] == 400
    assert np.all(out.argmax(axis=1) == 100)  # 1000 Hz / 10 Hz per bin


def test_log_spectrogram_is_peak_normalised(speech):
    ex = get_extractor("log_spectrogram", {})
    a, b = ex.extract_batch([speech["short"], 0.1 * speech["short"]], SR)
    # Equal up to float32 rounding, which log(|X| + 1e-7) magnifies in near-empty bins.
    np.testing.assert_allclose(a, b, atol=1e-2)
    assert np.median(np.abs(a - b)) < 1e-5


def test_pitch_tracks_a_harmonic_tone_and_not_noise():
    t = np.arange(2 * SR) / SR
    ex = get_extractor("fbank_pitch", {})
    for f0 in (90.0, 150.0, 300.0):
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)).astype(np.float32) * 0.1
        (out,) = ex.extract_batch([tone], SR)
        assert np.abs(out[:, 41] / f0 - 1).max() < 0.01
        assert out[:, 42].min() > 0.8
    noise = np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32) * 0.1
    (out,) = ex.extract_batch([noise], SR)
    assert np.median(out[:, 42]) < 0.5
    (silence,) = ex.extract_batch([np.zeros(SR, np.float32)], SR)
    assert np.abs(silence[:, 42]).max() < 1e-3


def test_fbank_pitch_variants(speech):
    x = speech["short"]
    (hz,) = get_extractor("fbank_pitch", {}).extract_batch([x], SR)
    (log,) = get_extractor("fbank_pitch", {"pitch_unit": "log", "use_energy": False}).extract_batch([x], SR)
    assert log.shape == (hz.shape[0], 42)
    np.testing.assert_allclose(log[:, :40], hz[:, :40], rtol=1e-6)
    np.testing.assert_allclose(np.exp(log[:, 40]), hz[:, 41], rtol=1e-5)


def test_egemaps_gives_88_finite_values(speech):
    ex = get_extractor("egemaps", {})
    outs = ex.extract_batch([speech["short"], speech["long"], speech["short"][:400]], SR)
    for out in outs:
        assert out.shape == (1, 88) and out.dtype == np.float32 and np.isfinite(out).all()
    assert len(ex.info()["feature_names"]) == 88


# ----------------------------------------------------------- speed perturbation
@pytest.mark.parametrize("factor", [0.8, 0.9, 1.1, 1.2])
def test_speed_perturb_changes_length_and_pitch(speech, factor):
    x = speech["long"]
    y = speed_perturb(x, factor, SR)
    assert y.dtype == np.float32
    assert abs(len(y) - len(x) / factor) <= 1
    np.testing.assert_array_equal(y, speed_perturb(x, factor, SR))  # deterministic
    # Speed (not tempo) perturbation: F0 moves by the same factor.
    ex = get_extractor("fbank_pitch", {})
    a, b = ex.extract_batch([x, y], SR)
    f0_a = np.median(a[a[:, 42] > 0.9, 41])
    f0_b = np.median(b[b[:, 42] > 0.9, 41])
    assert abs(f0_b / f0_a / factor - 1) < 0.05


def test_speed_perturb_identity(speech):
    x = speech["short"]
    np.testing.assert_array_equal(speed_perturb(x, 1.0, SR), x)


@pytest.mark.parametrize("factor", [0, -1.0, float("nan"), "fast", 50.0])
def test_speed_perturb_rejects_bad_factors(factor):
    with pytest.raises(ConfigError, match="speed factor"):
        speed_perturb(np.zeros(100, np.float32), factor, SR)


# ---------------------------------------------------------------- config errors
@pytest.mark.parametrize("name,params,match", [
    ("lld", {"backend": "librosa"}, "backend"),
    ("lld", {"win": -0.05}, "win"),
    ("lld", {"win": 0.001}, "win"),
    ("lld", {"precision": "float16"}, "precision"),
    ("lld", {"windw": 0.05}, "unknown params"),
    ("ma_spectrogram", {"n_fft": 512}, "n_fft"),
    ("ma_spectrogram", {"fmax": 9000}, "fmax"),
    ("ma_spectrogram", {"hop": 0}, "hop"),
    ("log_spectrogram", {"window": "kaiser"}, "window"),
    ("log_spectrogram", {"power": 3}, "power"),
    ("fbank_pitch", {"f0_min": 500}, "f0_min"),
    ("fbank_pitch", {"pitch_unit": "mel"}, "pitch_unit"),
    ("fbank_pitch", {"num_mel_bins": 40.5}, "num_mel_bins"),
    ("fbank_pitch", {"lowpass_hz": 200}, "lowpass_hz"),
    ("fbank_pitch", {"use_energy": "yes"}, "use_energy"),
    ("egemaps", {"feature_set": "ComParE"}, "unknown params"),
])
def test_bad_config_is_a_config_error(name, params, match):
    with pytest.raises(ConfigError, match=match):
        get_extractor(name, params)


# ------------------------------------------------------------------------- GPU
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", FRAMED)
def test_gpu_matches_cpu(speech, name):
    x = [speech["long"], speech["short"]]
    cpu = get_extractor(name, {}, "cpu").extract_batch(x, SR)
    gpu = get_extractor(name, {}, "cuda").extract_batch(x, SR)
    for a, b in zip(cpu, gpu):
        assert a.shape == b.shape
        # FFT libraries differ at rounding level, which can flip a near-tie (the best pitch
        # lag of an ambiguous frame, a bin near the log floor): allow a few such values.
        assert np.isclose(a, b, rtol=1e-3, atol=1e-3).mean() > 0.999

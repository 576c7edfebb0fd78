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
def _reference_lld(x: np.ndarray) -> np.ndarray:
    from pyAudioAnalysis import ShortTermFeatures

    feats, _ = ShortTermFeatures.feature_extraction(x.astype(np.float64) * 32768.0, SR,
                                                    0.050 * SR, 0.025 * SR, deltas=False)
    return feats.T


def _scaled_errors(ours: np.ndarray, ref: np.ndarray):
    """Per-feature max |error| over frames, relative to that feature's range on the utterance,
    on all frames and on voiced frames (energy above 1e-3 of the utterance maximum)."""
    scale = np.abs(ref).max(axis=0)
    err = np.abs(ours.astype(np.float64) - ref)
    voiced = ref[:, 1] > 1e-3 * ref[:, 1].max()
    return err.max(axis=0) / scale, err[voiced].max(axis=0) / scale, voiced


@pytest.mark.parametrize("key", ["long", "short"])
def test_lld_matches_pyaudioanalysis(speech, key):
    """Documented tolerance (float64, the default): every feature within 1e-5 of its range on
    every frame, and within 1e-6 on voiced frames. Measured: ~1e-6 and ~6e-8; the float32
    output rounding alone is 6e-8. The residual on silent frames is FFT rounding noise
    (1e-17) meeting pyAudioAnalysis's 2.2e-16 guard inside log10 for the MFCCs."""
    x = speech[key]
    ref = _reference_lld(x)
    ours = get_extractor("lld", {}).extract_batch([x], SR)[0]
    assert ours.shape == ref.shape  # same frame count: whole frames only, tail dropped
    all_err, voiced_err, voiced = _scaled_errors(ours, ref)
    assert voiced.sum() > 10
    assert all_err.max() < 1e-5, all_err
    assert voiced_err.max() < 1e-6, voiced_err
    # The first frame's flux is 0 in both (pyAudioAnalysis compares it with itself).
    assert ours[0, 6] == 0.0 == ref[0, 6]


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

import math

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.audio import SEGMENT_TOLERANCE, audio_info, headers_at_rate, read_audio, write_audio
from ser_pipeline.errors import AudioError, listing


def _tone(freq, seconds, sr, channels=1, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def test_reads_mono_16k_and_segments(tmp_path):
    x = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    write_audio(tmp_path / "a.wav", x)
    y = read_audio(tmp_path / "a.wav")
    assert y.shape == (16000,) and y.dtype == np.float32
    seg = read_audio(tmp_path / "a.wav", 0.25, 0.5)
    assert len(seg) == 4000
    np.testing.assert_allclose(seg, y[4000:8000])


@pytest.mark.parametrize("sr, channels", [(48000, 2), (44100, 1), (8000, 1), (22050, 6)])
def test_any_rate_and_channel_count_becomes_16k_mono(tmp_path, sr, channels):
    p = tmp_path / "x.wav"
    sf.write(p, _tone(440, 1.0, sr, channels), sr, subtype="PCM_16")
    y = read_audio(p)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == math.ceil(sr * 16000 / sr)  # 1 s in, 16000 samples out
    # the tone survives: its spectrum peaks at 440 Hz (within one 1 Hz bin) at the same level
    spec = np.abs(np.fft.rfft(y))
    assert abs(int(np.argmax(spec)) - 440) <= 1
    assert np.sqrt(np.mean(y[800:-800] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_resampling_removes_content_above_the_new_nyquist(tmp_path):
    sr = 48000
    x = _tone(440, 1.0, sr) + _tone(12000, 1.0, sr)  # 12 kHz cannot exist at 16 kHz
    sf.write(tmp_path / "x.wav", x, sr, subtype="FLOAT")
    y = read_audio(tmp_path / "x.wav")
    spec = np.abs(np.fft.rfft(y)) / len(y)
    # 12 kHz would alias to 4 kHz if it were decimated without a low-pass filter
    assert spec[4000] < 1e-2 * spec[440]  # measured -55 dB; plain decimation gives 0 dB


def test_stereo_is_averaged(tmp_path):
    left = np.full(4800, 0.6, np.float32)
    right = np.full(4800, 0.2, np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(tmp_path / "s.wav"), 0.4, atol=1e-6)


def test_segment_times_are_source_seconds(tmp_path):
    sr = 48000
    x = np.zeros((3 * sr, 2), np.float32)
    x[sr: 2 * sr] = 0.5  # a 1-s block of DC in the middle second
    sf.write(tmp_path / "seg.wav", x, sr, subtype="FLOAT")
    seg = read_audio(tmp_path / "seg.wav", 1.0, 2.0)
    assert len(seg) == 16000
    np.testing.assert_allclose(seg[200:-200], 0.5, atol=1e-3)


def test_audio_info_reads_the_header(tmp_path):
    sf.write(tmp_path / "i.wav", np.zeros((4410, 2), np.float32), 44100)
    info = audio_info(tmp_path / "i.wav")
    assert (info.sample_rate, info.channels, info.frames) == (44100, 2, 4410)
    assert info.duration == pytest.approx(0.1)
    with pytest.raises(AudioError, match="nope.wav"):
        audio_info(tmp_path / "nope.wav")


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b"RIFF....WAVEfmt garbage"), "cannot be read"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "empty"),
    (lambda p: sf.write(p, np.full(100, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN"),
    (lambda p: sf.write(p, np.full((100, 2), np.inf, np.float32), 48000, subtype="FLOAT"), "infinite"),
])
def test_bad_audio_names_the_file_and_the_reason(tmp_path, make, reason):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError, match=reason) as e:
        read_audio(p)
    assert str(p) in str(e.value)


def test_segment_outside_the_file_is_an_error(tmp_path):
    write_audio(tmp_path / "a.wav", np.zeros(1600, np.float32))  # 0.1 s
    with pytest.raises(AudioError, match="starts after the end"):
        read_audio(tmp_path / "a.wav", 5.0, 6.0)


def test_segment_running_past_the_end_names_both_lengths(tmp_path):
    sf.write(tmp_path / "b.wav", np.zeros(48000, np.float32), 48000)  # 1.0 s
    with pytest.raises(AudioError, match=r"segment end 1\.200 s, file length 1\.000 s") as e:
        read_audio(tmp_path / "b.wav", 0.5, 1.2)
    assert str(tmp_path / "b.wav") in str(e.value)


def test_segment_within_tolerance_is_cut_at_the_end_of_the_file(tmp_path):
    sf.write(tmp_path / "c.wav", np.zeros(48000, np.float32), 48000)  # 1.0 s
    y = read_audio(tmp_path / "c.wav", 0.5, 1.0 + SEGMENT_TOLERANCE * 0.9)
    assert len(y) == 8000  # 0.5 s, not 0.509 s: the file ends there


@pytest.mark.parametrize("start, end", [(0.5, None), (0.5, 0.5), (-0.1, 0.2), (0.3, 0.1)])
def test_invalid_segment_is_an_error(tmp_path, start, end):
    write_audio(tmp_path / "d.wav", np.zeros(16000, np.float32))
    with pytest.raises(AudioError, match="d.wav"):
        read_audio(tmp_path / "d.wav", start, end)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AudioError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")


def test_headers_at_rate_sorts_files_into_usable_missing_and_unusable(tmp_path):
    good, stereo, fast = tmp_path / "good.wav", tmp_path / "stereo.wav", tmp_path / "fast.wav"
    sf.write(good, _tone(440, 0.5, 16000), 16000)
    sf.write(stereo, _tone(440, 0.5, 16000, channels=2), 16000)
    sf.write(fast, _tone(440, 0.5, 44100), 44100)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really")
    absent = tmp_path / "absent.wav"
    headers, missing, unusable = headers_at_rate([good, stereo, fast, corrupt, absent], 16000)
    assert list(headers) == [good] and headers[good].duration == pytest.approx(0.5)
    assert missing == [absent]
    assert [u.split(":")[0] for u in unusable] == [str(stereo), str(fast), str(corrupt)]
    assert "2 channel(s)" in unusable[0] and "44100 Hz" in unusable[1] and "cannot be read as audio" in unusable[2]


def test_listing_names_the_first_items_and_counts_the_rest():
    assert listing(["a", "b"]) == "\n  a\n  b"
    assert listing(range(13), limit=10) == "".join(f"\n  {i}" for i in range(10)) + "\n  ... and 3 more"
    assert listing([]) == ""

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.audio import read_audio, write_audio
from ser_pipeline.errors import AudioError


def test_reads_mono_16k_and_segments(tmp_path):
    x = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    write_audio(tmp_path / "a.wav", x)
    y = read_audio(tmp_path / "a.wav")
    assert y.shape == (16000,) and y.dtype == np.float32
    seg = read_audio(tmp_path / "a.wav", 0.25, 0.5)
    assert len(seg) == 4000
    np.testing.assert_allclose(seg, y[4000:8000])


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b"RIFF....WAVEfmt garbage"), "cannot be read"),
    (lambda p: sf.write(p, np.zeros(100, np.float32), 8000), "sample rate is 8000"),
    (lambda p: sf.write(p, np.zeros((100, 2), np.float32), 16000), "2 channels"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "empty"),
    (lambda p: sf.write(p, np.full(100, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN"),
])
def test_bad_audio_names_the_file_and_the_reason(tmp_path, make, reason):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError, match=reason) as e:
        read_audio(p)
    assert str(p) in str(e.value)


def test_segment_outside_the_file_is_an_error(tmp_path):
    write_audio(tmp_path / "a.wav", np.zeros(1600, np.float32))
    with pytest.raises(AudioError, match="outside"):
        read_audio(tmp_path / "a.wav", 5.0, 6.0)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AudioError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")

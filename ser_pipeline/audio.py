"""Reading audio with checks, so a bad file fails with its name and the reason.

soundfile is used rather than torchaudio.load: torchaudio 2.9 needs torchcodec and FFmpeg
libraries for I/O, which a fresh machine does not have.
"""
from __future__ import annotations

import numpy as np
import soundfile as sf

from ser_pipeline import SAMPLE_RATE
from ser_pipeline.errors import AudioError


def read_audio(path, start: float | None = None, end: float | None = None,
               expected_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples of ``path`` (optionally the segment ``start``..``end`` seconds).

    Raises AudioError for unreadable, stereo, wrongly sampled, empty or non-finite audio.
    """
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError/FileNotFound
        raise AudioError(path, f"cannot be read as audio ({e})") from None
    if info.samplerate != expected_sr:
        raise AudioError(path, f"sample rate is {info.samplerate} Hz, expected {expected_sr} Hz "
                               f"(resample the corpus first, e.g. sox in.wav -r {expected_sr} out.wav)")
    if info.channels != 1:
        raise AudioError(path, f"has {info.channels} channels, expected mono")
    first = 0 if start is None else int(round(start * info.samplerate))
    last = info.frames if end is None else int(round(end * info.samplerate))
    if start is not None and (first < 0 or first >= info.frames or last <= first):
        raise AudioError(path, f"segment {start:.3f}-{end:.3f} s lies outside the file "
                               f"({info.frames / info.samplerate:.3f} s long)")
    last = min(last, info.frames)
    try:
        x, _ = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=False)
    except Exception as e:
        raise AudioError(path, f"is corrupt ({e})") from None
    if x.size == 0:
        raise AudioError(path, "is empty (0 samples)")
    if not np.all(np.isfinite(x)):
        raise AudioError(path, "contains NaN or infinite samples")
    return np.ascontiguousarray(x, dtype=np.float32)


def write_audio(path, x: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """16-bit PCM wav, written atomically."""
    from ser_pipeline.atomic import atomic_path

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.asarray(x, dtype=np.float32), sr, subtype="PCM_16", format="WAV")

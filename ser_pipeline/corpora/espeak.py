"""What the espeak-ng generated corpora share: synthesis, decoding, room noise, done-markers.

The demo corpora (IEMOCAP, CMU-MOSEI and FAU-AIBO layouts) stand in for licensed corpora in
CI and tutorials. They must be byte-identical for a seed (so cached features stay valid and
tests can compare files), so everything that touches samples lives here once: espeak-ng is
called with explicit voice/pitch/rate/amplitude (no defaults that a newer espeak-ng could
change silently), its 22.05 kHz stream is resampled to 16 kHz with a fixed polyphase filter,
and silences get a seeded noise floor rather than digital zero.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from concurrent.futures import ThreadPoolExecutor
from math import gcd
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from scipy.signal import resample_poly

from ser_pipeline import SAMPLE_RATE
from ser_pipeline.atomic import atomic_path, write_text
from ser_pipeline.errors import ConfigError, CorpusError

NOISE_RMS = 3e-4  # a recording-room floor, so silences are not digital zero


def find_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise CorpusError("espeak-ng not found on PATH: it synthesises the demo corpus "
                          "(install it, e.g. apt-get install espeak-ng)")
    return exe


def espeak_version(exe: str) -> str:
    return subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()


def synthesise(exe: str, text: str, *, voice: str, pitch: int, pitch_range: int, rate: int,
               amplitude: int, name: str) -> np.ndarray:
    """16 kHz float32 speech of ``text``; ``name`` only labels errors.

    Pitch range goes through SSML because espeak-ng has no command-line option for it.
    """
    ssml = f'<speak><prosody range="{pitch_range}%">{escape(text)}</prosody></speak>'
    cmd = [exe, "-m", "-z", "-v", voice, "-p", str(pitch), "-s", str(rate),
           "-a", str(amplitude), "--stdout", ssml]
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0 or not res.stdout.startswith(b"RIFF"):
        raise CorpusError(f"espeak-ng failed for {name} (exit {res.returncode}): "
                          f"{res.stderr.decode(errors='replace').strip()} [{' '.join(cmd)}]")
    return decode_wav(res.stdout, name)


def decode_wav(wav: bytes, name: str) -> np.ndarray:
    """16 kHz float32 from espeak's streamed wav, whose size fields are placeholders."""
    sr = int.from_bytes(wav[24:28], "little")
    channels, bits = int.from_bytes(wav[22:24], "little"), int.from_bytes(wav[34:36], "little")
    data = wav.find(b"data", 36)
    if channels != 1 or bits != 16 or data < 0:
        raise CorpusError(f"espeak-ng output for {name} is not 16-bit mono wav")
    raw = wav[data + 8:]
    x = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    if x.size == 0:
        raise CorpusError(f"espeak-ng produced no audio for {name}")
    g = gcd(SAMPLE_RATE, sr)
    return resample_poly(x, SAMPLE_RATE // g, sr // g).astype(np.float32)


def noise_floor(seed: int, name: str, samples: int, rms: float = NOISE_RMS) -> np.ndarray:
    """Seeded background noise for one recording, independent of every other recording."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return rng.normal(0.0, rms, samples).astype(np.float32)


def trim_silence(x: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Cut espeak's leading/trailing near-silence, so planned pauses are the only pauses."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    return x if loud.size == 0 else x[loud[0]:loud[-1] + 1]


def check_ints(**values) -> list[int]:
    """``name=(value, minimum)`` pairs -> the values as ints, or a ConfigError naming the key."""
    out = []
    for key, (value, low) in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{key}: must be an integer >= {low}, got {value!r}")
        out.append(int(value))
    return out


def read_marker(marker: Path):
    try:
        return json.loads(Path(marker).read_text())
    except (OSError, ValueError):
        return None


def write_marker(marker: Path, params: dict) -> None:
    write_text(marker, json.dumps(params, sort_keys=True) + "\n")


def build_once(root: Path, marker: Path, params: dict, build) -> Path:
    """``root`` as ``build(tmp, exe, pool)`` writes it, unless ``marker`` already holds ``params``.

    The tree is built under a temporary name and renamed when complete, and the marker
    (holding the parameters) is written after that, so an interrupted run never looks done
    and a rerun with the same parameters costs nothing. ``exe`` is espeak-ng, ``pool`` two
    worker threads for rendering.
    """
    if root.is_dir() and read_marker(marker) == params:
        return root
    exe = find_espeak()
    marker.unlink(missing_ok=True)
    with atomic_path(root) as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        tmp.mkdir()
        build(tmp, exe, pool)
    write_marker(marker, params)
    return root

"""Audio audit at the manifest stage: every file of a corpus checked at once.

Why here and why all at once: a bad file otherwise surfaces deep inside feature extraction,
one per run, after minutes or hours of work; at the manifest stage the whole corpus is checked
in one pass and every problem is listed together, in a report and in one CorpusError.

Each file is read once, at its native rate and channel count (they are recorded, never refused:
the audio reader decides what it accepts), in blocks so that long dialog recordings never sit in
memory whole. Every utterance cut from a file (start/end) gets its own statistics from the same
pass. Findings, by kind (default severity in brackets; each one configurable as error, warning or
ignore):
  unreadable        [error]   soundfile cannot open or decode the file (the reason is kept)
  truncated         [error]   a WAV header declares more sample frames than the file holds
                              (libsndfile silently shortens such files)
  empty             [error]   no samples at all
  nonfinite         [error]   NaN/inf samples (float files)
  out_of_range      [error]   float samples far outside [-1, 1] (peak > float_peak_max): usually
                              integer samples stored as float without scaling
  segment_past_end  [error]   start/end lies past the end of the file (beyond the tolerance)
  too_short         [error]   under min_seconds of audio
  silent            [warning] peak or RMS below silence_peak_dbfs / silence_rms_dbfs
  clipped           [warning] more than clip_share of the samples at full scale (|x| >= clip_level)
  duration_mismatch [warning] the manifest's duration disagrees with the audio or with its own
                              start/end by more than duration_tolerance seconds
Errors raise a CorpusError naming every bad file and why; warnings only go into the report.
"""
from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ser_pipeline.errors import ConfigError, CorpusError

KINDS = ("unreadable", "truncated", "empty", "nonfinite", "out_of_range", "segment_past_end",
         "too_short", "silent", "clipped", "duration_mismatch")
DEFAULT_SEVERITY = {
    "unreadable": "error", "truncated": "error", "empty": "error", "nonfinite": "error",
    "out_of_range": "error", "segment_past_end": "error", "too_short": "error",
    "silent": "warning", "clipped": "warning", "duration_mismatch": "warning",
}
DEFAULT_THRESHOLDS = {
    "min_seconds": 0.1,          # shorter utterances give (almost) no frames to most extractors
    "silence_peak_dbfs": -60.0,  # peak below this (re full scale 1.0): nothing but noise floor
    "silence_rms_dbfs": -70.0,   # RMS below this: silent even if a click sets the peak
    "clip_level": 0.999,         # |x| at or above this counts as full scale
    "clip_share": 0.001,         # clipped when more than this share of samples is at full scale
    "float_peak_max": 1.5,       # float files: peak above this is "far outside [-1, 1]"
    "duration_tolerance": 0.1,   # seconds of disagreement allowed for manifest durations/segments
    "block_seconds": 30.0,       # samples are read in blocks of this length
    "severity": DEFAULT_SEVERITY,
}
REPORT_COLUMNS = ["file", "utt_id", "kind", "severity", "detail"]
FILE_COLUMNS = ["file", "samplerate", "channels", "frames", "seconds", "format", "subtype"]


@dataclass
class AuditReport:
    findings: pd.DataFrame  # one row per finding: file, utt_id, kind, severity, detail
    files: pd.DataFrame     # one row per readable file: samplerate, channels, frames, format
    thresholds: dict = field(default_factory=dict)

    @property
    def errors(self) -> pd.DataFrame:
        return self.findings[self.findings["severity"] == "error"]

    @property
    def warnings(self) -> pd.DataFrame:
        return self.findings[self.findings["severity"] == "warning"]


def resolve_thresholds(thresholds: dict | None, key: str = "audit") -> dict:
    """Defaults overlaid with ``thresholds``; unknown keys or bad values are ConfigErrors."""
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise ConfigError(f"{key}: unknown keys {unknown}; allowed: {sorted(DEFAULT_THRESHOLDS)}")
    out = {**DEFAULT_THRESHOLDS, **thresholds}
    for k, v in out.items():
        if k == "severity":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{key}.{k}: expected a number, got {v!r}")
    for k in ("min_seconds", "clip_share", "duration_tolerance"):
        if out[k] < 0:
            raise ConfigError(f"{key}.{k}: must be >= 0, got {out[k]}")
    if not 0 < out["clip_level"] <= 1 or out["block_seconds"] <= 0 or out["float_peak_max"] < 1:
        raise ConfigError(f"{key}: need 0 < clip_level <= 1, block_seconds > 0, float_peak_max >= 1")
    sev = thresholds.get("severity") or {}
    if not isinstance(sev, dict):
        raise ConfigError(f"{key}.severity: expected a mapping kind -> error/warning/ignore")
    bad = sorted(set(sev) - set(KINDS))
    if bad:
        raise ConfigError(f"{key}.severity: unknown kinds {bad}; known: {list(KINDS)}")
    for k, v in sev.items():
        if v not in ("error", "warning", "ignore"):
            raise ConfigError(f"{key}.severity.{k}: '{v}' is not error, warning or ignore")
    out["severity"] = {**DEFAULT_SEVERITY, **sev}
    return out


def _dbfs(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else -math.inf


def wav_declared_frames(path) -> int | None:
    """Sample frames a RIFF/WAVE header declares in its data chunk (None: not a plain WAV, or
    a streaming placeholder size). libsndfile trusts the file size instead, so a truncated
    file reads as a shorter, valid one; comparing the two finds it."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                hdr = f.read(8)
                if len(hdr) < 8:
                    return None
                cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size)
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                    if size % 2:
                        f.seek(1, io.SEEK_CUR)
                elif cid == b"data":
                    if block_align in (None, 0) or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size % 2), io.SEEK_CUR)
    except OSError:
        return None


class _SegStats:
    """Running statistics of one utterance's samples (all channels together)."""

    def __init__(self, utt_id: str, first: int, last: int, row):
        self.utt_id, self.first, self.last, self.row = utt_id, first, last, row
        self.n = 0
        self.peak = 0.0
        self.sumsq = 0.0
        self.clipped = 0
        self.nonfinite = 0

    def update(self, x: np.ndarray, clip_level: float) -> None:
        x = x.reshape(-1)
        if x.size == 0:
            return
        finite = np.isfinite(x)
        nf = int(x.size - np.count_nonzero(finite))
        if nf:
            self.nonfinite += nf
            x = x[finite]
        a = np.abs(x)
        self.n += x.size + nf
        if a.size:
            self.peak = max(self.peak, float(a.max()))
            self.sumsq += float(np.dot(x.astype(np.float64), x.astype(np.float64)))
            self.clipped += int(np.count_nonzero(a >= clip_level))

    @property
    def rms(self) -> float:
        n = self.n - self.nonfinite
        return math.sqrt(self.sumsq / n) if n > 0 else 0.0


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _audit_file(path: str, rows: list, th: dict, add, files: list) -> None:
    import soundfile as sf

    ids = [r.utt_id for r in rows]
    try:
        f = sf.SoundFile(path)
    except Exception as e:
        reason = "file does not exist" if not os.path.exists(path) else f"cannot be read as audio ({e})"
        add(path, ids, "unreadable", reason)
        return
    with f:
        sr, ch, frames = f.samplerate, f.channels, f.frames
        is_float = f.subtype in ("FLOAT", "DOUBLE")
        files.append({"file": path, "samplerate": sr, "channels": ch, "frames": frames,
                      "seconds": frames / sr if sr else float("nan"), "format": f.format, "subtype": f.subtype})
        declared = wav_declared_frames(path) if f.format == "WAV" else None
        if declared is not None and declared > frames:
            add(path, ids, "truncated", f"header declares {declared} sample frames ({declared / sr:.3f} s), "
                                        f"the file holds {frames} ({frames / sr:.3f} s)")
        if frames == 0:
            add(path, ids, "empty", "0 samples")
            return
        segs = []
        tol = th["duration_tolerance"]
        for r in rows:
            start = None if _nan(r.start) else float(r.start)
            end = None if _nan(r.end) else float(r.end)
            first = 0 if start is None else int(round(start * sr))
            last = frames if end is None else int(round(end * sr))
            if start is not None or end is not None:
                if start is not None and end is not None and end <= start:
                    add(path, [r.utt_id], "segment_past_end", f"segment {start:.3f}-{end:.3f} s is empty or reversed")
                    continue
                if first >= frames or (end is not None and end > frames / sr + tol):
                    add(path, [r.utt_id], "segment_past_end",
                        f"segment {start or 0:.3f}-{end if end is not None else frames / sr:.3f} s lies past the "
                        f"end of the file ({frames / sr:.3f} s)")
                    if first >= frames:
                        continue
                if start is not None and end is not None and not _nan(r.duration) and \
                        abs(float(r.duration) - (end - start)) > tol:
                    add(path, [r.utt_id], "duration_mismatch",
                        f"manifest duration {r.duration:.3f} s but its start/end span {end - start:.3f} s")
            segs.append(_SegStats(r.utt_id, max(0, first), min(frames, last), r))
        block = max(1, int(th["block_seconds"] * sr))
        pos, read_error = 0, None
        segs.sort(key=lambda s: s.first)
        while pos < frames:
            try:
                x = f.read(min(block, frames - pos), dtype="float32", always_2d=True)
            except Exception as e:  # libsndfile's errors for corrupt data (only the read itself)
                read_error = e
                break
            if len(x) == 0:
                break
            lo, hi = pos, pos + len(x)
            for s in segs:
                if s.first < hi and s.last > lo:
                    s.update(x[max(s.first, lo) - lo:min(s.last, hi) - lo], th["clip_level"])
            pos = hi
        if read_error is not None or pos < frames:
            why = f"decoding failed at sample frame {pos} of {frames} ({read_error})" if read_error else \
                f"only {pos} of {frames} sample frames could be read"
            add(path, ids, "unreadable", why)
            return
    for s in segs:
        secs = (s.last - s.first) / sr
        r = s.row
        if s.nonfinite:
            add(path, [s.utt_id], "nonfinite", f"{s.nonfinite} NaN/inf samples")
        out_of_range = is_float and s.peak > th["float_peak_max"]
        if out_of_range:
            add(path, [s.utt_id], "out_of_range", f"float samples reach {s.peak:.4g} "
                                                  f"(allowed up to {th['float_peak_max']}; expected within [-1, 1])")
        if secs < th["min_seconds"]:
            add(path, [s.utt_id], "too_short", f"{secs:.3f} s of audio, under min_seconds={th['min_seconds']}")
        if s.n and (_dbfs(s.peak) < th["silence_peak_dbfs"] or _dbfs(s.rms) < th["silence_rms_dbfs"]):
            add(path, [s.utt_id], "silent", f"peak {_dbfs(s.peak):.1f} dBFS, RMS {_dbfs(s.rms):.1f} dBFS "
                                            f"(thresholds {th['silence_peak_dbfs']} / {th['silence_rms_dbfs']} dBFS)")
        if s.n and s.clipped / s.n > th["clip_share"] and not out_of_range:
            add(path, [s.utt_id], "clipped", f"{s.clipped / s.n:.2%} of samples at full scale "
                                             f"(|x| >= {th['clip_level']}; allowed {th['clip_share']:.2%})")
        whole_file = _nan(r.start) and _nan(r.end)  # segments were compared with their start/end above
        if whole_file and not _nan(r.duration) and abs(float(r.duration) - secs) > th["duration_tolerance"]:
            add(path, [s.utt_id], "duration_mismatch",
                f"manifest duration {float(r.duration):.3f} s, the audio holds {secs:.3f} s")


def audit_audio(manifest: pd.DataFrame, thresholds: dict | None = None, report_path=None,
                files_path=None, key: str = "audit") -> AuditReport:
    """Check every audio file of ``manifest``; write the findings (CSV) to ``report_path`` and
    the per-file formats to ``files_path`` (both atomically, when given); raise a CorpusError
    listing every file with an error-level finding. Returns the report when there is none."""
    from ser_pipeline.atomic import atomic_path

    th = resolve_thresholds(thresholds, key)
    for col in ("utt_id", "audio_path"):
        if col not in manifest.columns:
            raise CorpusError(f"manifest has no '{col}' column; cannot audit its audio")
    df = manifest.copy()
    for col in ("start", "end", "duration"):
        if col not in df.columns:
            df[col] = np.nan
    findings: list[dict] = []

    def add(path, utt_ids, kind, detail):
        sev = th["severity"][kind]
        if sev != "ignore":
            findings.append({"file": path, "utt_id": ";".join(map(str, utt_ids)), "kind": kind,
                             "severity": sev, "detail": detail})

    files: list[dict] = []
    for path, group in df.groupby("audio_path", sort=True):
        _audit_file(str(path), list(group.itertuples(index=False)), th, add, files)
    report = AuditReport(pd.DataFrame(findings, columns=REPORT_COLUMNS),
                         pd.DataFrame(files, columns=FILE_COLUMNS), th)
    for target, table in ((report_path, report.findings), (files_path, report.files)):
        if target is not None:
            with atomic_path(target) as tmp:
                table.to_csv(tmp, index=False)
    errors = report.errors
    if len(errors):
        lines = []
        for path, g in errors.groupby("file", sort=True):
            why = "; ".join(f"{k}{f' [{u}]' if u else ''}: {d}" for k, u, d in zip(g["kind"], g["utt_id"], g["detail"]))
            lines.append(f"  {path}: {why}")
        where = f" (report: {report_path})" if report_path is not None else ""
        raise CorpusError(f"audio audit found {len(errors)} error(s) in {errors['file'].nunique()} of "
                          f"{df['audio_path'].nunique()} files{where}:\n" + "\n".join(lines))
    return report


__all__ = ["audit_audio", "AuditReport", "resolve_thresholds", "DEFAULT_THRESHOLDS", "DEFAULT_SEVERITY",
           "KINDS", "wav_declared_frames"]

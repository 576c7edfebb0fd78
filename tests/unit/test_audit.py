"""Audio audit: every kind of fault found in one pass, errors raised together, warnings reported."""
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_pipeline.corpora.audit import audit_audio, resolve_thresholds, wav_declared_frames
from ser_pipeline.errors import ConfigError, CorpusError

SR = 16000


def _tone(seconds, amp=0.3, sr=SR, freq=220.0):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "wav"
    d.mkdir()
    files = {}

    def w(name, x, sr=SR, subtype="PCM_16"):
        files[name] = d / f"{name}.wav"
        sf.write(files[name], x, sr, subtype=subtype)

    w("good", _tone(0.5))
    w("stereo44k", np.stack([_tone(0.5, sr=44100), _tone(0.5, sr=44100)], axis=1), sr=44100)
    w("short", _tone(0.02))
    w("silent", np.zeros(SR // 2, np.float32))
    w("hum", np.random.default_rng(0).normal(0, 1e-5, SR // 2).astype(np.float32), subtype="FLOAT")
    w("clipped", np.clip(_tone(0.5, amp=3.0), -1, 1))
    w("int_as_float", _tone(0.5, amp=20000.0), subtype="FLOAT")
    nan = _tone(0.5)
    nan[100:110] = np.nan
    w("nan", nan, subtype="FLOAT")
    w("empty", np.zeros(0, np.float32))
    w("long", _tone(3.0))
    w("full", _tone(1.0))
    raw = files["full"].read_bytes()
    files["truncated"] = d / "truncated.wav"
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    files["garbage"] = d / "garbage.wav"
    files["garbage"].write_bytes(b"RIFF not really a wav file at all")
    files["missing"] = d / "missing.wav"
    del files["full"]
    rows = [{"utt_id": k, "audio_path": str(p), "start": np.nan, "end": np.nan,
             "duration": 0.5} for k, p in files.items()]
    for r in rows:
        if r["utt_id"] == "long":
            r["duration"] = 3.0
        if r["utt_id"] == "short":
            r["duration"] = 0.02
        if r["utt_id"] == "truncated":
            r["duration"] = 1.0
    # Segments of the long file: one fine, one past the end, one whose duration disagrees.
    rows += [
        {"utt_id": "long_seg_ok", "audio_path": str(files["long"]), "start": 1.0, "end": 2.0, "duration": 1.0},
        {"utt_id": "long_seg_past", "audio_path": str(files["long"]), "start": 2.5, "end": 4.5, "duration": 2.0},
        {"utt_id": "long_seg_after", "audio_path": str(files["long"]), "start": 3.5, "end": 4.0, "duration": 0.5},
        {"utt_id": "long_seg_dur", "audio_path": str(files["long"]), "start": 0.0, "end": 1.0, "duration": 1.6},
        {"utt_id": "good_dur", "audio_path": str(files["good"]), "start": np.nan, "end": np.nan, "duration": 2.0},
    ]
    return pd.DataFrame(rows), files


def _kinds(findings):
    return {(u, k) for u, k in zip(findings["utt_id"], findings["kind"])}


def test_every_fault_is_found_in_one_run_and_all_errors_are_raised_together(corpus, tmp_path):
    df, files = corpus
    report_path = tmp_path / "reports" / "audit.csv"
    with pytest.raises(CorpusError) as ei:
        audit_audio(df, {"block_seconds": 0.25}, report_path=report_path, files_path=tmp_path / "files.csv")
    msg = str(ei.value)
    report = pd.read_csv(report_path, keep_default_na=False)
    kinds = _kinds(report)
    expected_errors = {
        ("garbage", "unreadable"), ("missing", "unreadable"), ("truncated", "truncated"), ("empty", "empty"),
        ("short", "too_short"), ("nan", "nonfinite"), ("int_as_float", "out_of_range"),
        ("long_seg_past", "segment_past_end"), ("long_seg_after", "segment_past_end"),
    }
    expected_warnings = {("silent", "silent"), ("hum", "silent"), ("clipped", "clipped"),
                         ("long_seg_dur", "duration_mismatch"), ("good_dur", "duration_mismatch")}
    assert expected_errors | expected_warnings <= kinds, kinds
    got_errors = set(_kinds(report[report["severity"] == "error"]))
    assert got_errors == expected_errors
    # nothing is said about good audio, the good segment, or a 44.1 kHz stereo file
    assert not {u for u, _ in kinds} & {"good", "stereo44k", "long", "long_seg_ok"}
    for name in ("garbage", "missing", "truncated", "empty", "short", "nan", "int_as_float", "long"):
        assert str(files[name]) in msg, name
    assert str(report_path) in msg
    assert "silent" not in msg and "clipped" not in msg  # warnings only in the report
    assert "header declares 16000 sample frames" in msg
    fmt = pd.read_csv(tmp_path / "files.csv").set_index("file")
    assert fmt.loc[str(files["stereo44k"]), "samplerate"] == 44100
    assert fmt.loc[str(files["stereo44k"]), "channels"] == 2
    assert sorted(p.name for p in report_path.parent.iterdir()) == ["audit.csv"]


def test_clean_corpus_passes_and_warnings_do_not_raise(corpus, tmp_path):
    df, files = corpus
    keep = df[df["utt_id"].isin(["good", "stereo44k", "long", "long_seg_ok", "silent", "clipped"])]
    rep = audit_audio(keep, report_path=tmp_path / "a.csv")
    assert set(rep.findings["kind"]) == {"silent", "clipped"} and rep.errors.empty
    assert len(pd.read_csv(tmp_path / "a.csv")) == 2


def test_severities_and_thresholds_are_configurable(corpus):
    df, _ = corpus
    short = df[df["utt_id"] == "short"]
    with pytest.raises(CorpusError, match="too_short"):
        audit_audio(short)
    assert audit_audio(short, {"min_seconds": 0.01}).findings.empty
    assert audit_audio(short, {"severity": {"too_short": "warning"}}).warnings["kind"].tolist() == ["too_short"]
    assert audit_audio(short, {"severity": {"too_short": "ignore"}}).findings.empty
    clipped = df[df["utt_id"] == "clipped"]
    with pytest.raises(CorpusError, match="clipped"):
        audit_audio(clipped, {"severity": {"clipped": "error"}})
    assert audit_audio(clipped, {"clip_share": 0.9}).findings.empty


def test_block_size_does_not_change_the_statistics(corpus):
    df, _ = corpus
    sub = df[df["utt_id"].isin(["long", "long_seg_ok", "long_seg_dur", "clipped", "hum"])]
    a = audit_audio(sub, {"block_seconds": 0.013}).findings
    b = audit_audio(sub, {"block_seconds": 100}).findings
    pd.testing.assert_frame_equal(a, b)


def test_bad_threshold_config_is_named():
    with pytest.raises(ConfigError, match="audit: unknown keys \\['min_second'\\]"):
        resolve_thresholds({"min_second": 1})
    with pytest.raises(ConfigError, match="audit.severity.silent"):
        resolve_thresholds({"severity": {"silent": "fatal"}})
    with pytest.raises(ConfigError, match="unknown kinds"):
        resolve_thresholds({"severity": {"loud": "error"}})
    with pytest.raises(ConfigError, match="audit.clip_share"):
        resolve_thresholds({"clip_share": "lots"})
    assert math.isclose(resolve_thresholds({})["min_seconds"], 0.1)


def test_wav_header_frames(tmp_path):
    p = tmp_path / "x.wav"
    sf.write(p, _tone(0.25), SR, subtype="PCM_16")
    assert wav_declared_frames(p) == 4000
    sf.write(tmp_path / "x.flac", _tone(0.25), SR)
    assert wav_declared_frames(tmp_path / "x.flac") is None

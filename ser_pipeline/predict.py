"""Running a trained model on new recordings: exactly the features and normalisation it saw.

The model folder (a training job's or an export's) names the feature configs its inputs
came from; the same extractors run here on the new audio (any sample rate or channel
count: :func:`ser_pipeline.audio.read_audio` resamples and downmixes), with the same
cropping, and the model applies its saved normalisation statistics
(:class:`ser_pipeline.inference.LoadedModel`). What a model needs and a file lacks (a
transcript for a text stream, a reference utterance for a conditioned model) is an error
that says so. Long recordings can be cut into fixed windows with a hop, one row each.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ser_pipeline import SAMPLE_RATE
from ser_pipeline.audio import read_audio
from ser_pipeline.errors import ConfigError
from ser_pipeline.inference import LoadedModel

INPUT_COLUMNS = ("path", "start", "end", "text", "reference", "speaker")


def read_inputs(paths: list[str]) -> pd.DataFrame:
    """Audio files, or one CSV with a ``path`` column (optionally start, end, text, reference,
    speaker); relative paths in a CSV are relative to the CSV's folder."""
    if len(paths) == 1 and paths[0].lower().endswith(".csv"):
        csv = Path(paths[0])
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        if "path" not in df.columns:
            raise ConfigError(f"{csv}: a predict CSV needs a 'path' column (has {list(df.columns)})")
        unknown = [c for c in df.columns if c not in INPUT_COLUMNS]
        if unknown:
            raise ConfigError(f"{csv}: unknown columns {unknown}; allowed: {list(INPUT_COLUMNS)}")
        for col in ("path", "reference"):
            if col in df.columns:
                df[col] = [str((csv.parent / p).resolve()) if p and not Path(p).is_absolute() else p
                           for p in df[col]]
    else:
        bad = [p for p in paths if p.lower().endswith(".csv")]
        if bad:
            raise ConfigError(f"give either audio files or one CSV, not {bad} among other inputs")
        df = pd.DataFrame({"path": [str(Path(p).resolve()) for p in paths]})
    for col in INPUT_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    return df


def _windows(df: pd.DataFrame, window: float | None, hop: float | None) -> pd.DataFrame:
    if not window:
        return df
    from ser_pipeline.audio import audio_info

    hop = hop or window
    rows = []
    for r in df.itertuples(index=False):
        start0 = float(r.start) if r.start else 0.0
        end0 = float(r.end) if r.end else audio_info(r.path).duration
        t = start0
        while t < end0 - 1e-9:
            rows.append({**r._asdict(), "start": f"{t:.3f}", "end": f"{min(t + window, end0):.3f}"})
            t += hop
            if t + 1e-9 >= end0:
                break
    return pd.DataFrame(rows, columns=df.columns)


def _waves(paths, starts, ends, feature: dict) -> list[np.ndarray]:
    out = []
    for p, s, e in zip(paths, starts, ends):
        x = read_audio(p, float(s) if s else None, float(e) if e else None)
        if feature.get("speed") and feature["speed"] != 1.0:
            from ser_pipeline.features.perturb import speed_perturb

            x = speed_perturb(x, feature["speed"], SAMPLE_RATE)
        if feature.get("max_seconds"):
            x = x[: int(feature["max_seconds"] * SAMPLE_RATE)]
        out.append(x)
    return out


def extract(feature: dict, waves=None, texts=None, device: str = "cpu"):
    """Frames of one feature config for in-memory inputs; returns (frames, extractor info)."""
    from ser_pipeline.features.base import get_extractor

    ex = get_extractor(feature["extractor"], feature.get("params") or {}, device)
    if ex.input_kind == "text":
        return [f for f, _ in ex.extract_batch(list(texts))], ex.info()
    return ex.extract_batch(list(waves), SAMPLE_RATE), ex.info()


def predict(model_dir, inputs: list[str], window: float | None = None, hop: float | None = None,
            device: str = "cpu") -> pd.DataFrame:
    model = LoadedModel(model_dir)
    df = _windows(read_inputs(inputs), window, hop)
    if df.empty:
        raise ConfigError("nothing to predict: no input file")
    streams, refs, attrs = {}, {}, {}
    need_ref = "reference" in getattr(model.model, "needs", ())
    if need_ref and (df["reference"] == "").any():
        raise ConfigError(f"{model.path}: this model conditions on a reference utterance of the same speaker "
                          f"({model.training['reference']}); give a 'reference' column in the input CSV")
    for stream, meta in model.record["features"].items():
        feature = meta["config"]
        if feature is None:
            raise ConfigError(f"{model.path}: the model folder does not record the feature config of '{stream}'")
        from ser_pipeline.features.base import extractor_class

        if extractor_class(feature["extractor"]).input_kind == "text":
            if (df["text"] == "").any():
                raise ConfigError(f"{model.path}: input stream '{stream}' reads a transcript; give a 'text' "
                                  f"column in the input CSV")
            streams[stream], info = extract(feature, texts=df["text"], device=device)
        else:
            streams[stream], info = extract(feature, waves=_waves(df["path"], df["start"], df["end"], feature),
                                            device=device)
            if need_ref:
                refs[stream], _ = extract(feature, waves=_waves(df["reference"], [""] * len(df), [""] * len(df),
                                                                feature), device=device)
        attrs[stream] = {"config": feature, "info": info}
    model.check_features(attrs)
    speakers = [s or p for s, p in zip(df["speaker"], df["path"])]
    probs = model.predict(streams, speakers, refs or None)
    out = df[["path", "start", "end"]].copy()
    out["predicted"] = [model.classes[i] for i in probs.argmax(axis=1)]
    for i, c in enumerate(model.classes):
        out[f"p_{c}"] = np.round(probs[:, i], 6)
    out["model"] = str(model.path)
    out["features"] = "; ".join(f"{s}: {m['config']}" for s, m in model.record["features"].items())
    if model.record.get("normalisation") == "speaker":
        out["note"] = ["normalised with the statistics of this speaker's rows in this input"
                       if s else "no speaker given: normalised with this file's own statistics" for s in df["speaker"]]
    return out

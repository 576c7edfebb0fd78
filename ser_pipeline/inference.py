"""A saved model applied to new data, exactly as its training job applied it to the test part.

Used by cross-corpus evaluation and by the ``predict`` command. The per-utterance
transforms (frame pooling, cropping, the middle-N-seconds cycle-repeat), the normalisation
(the training part's statistics, or each speaker's own) and the evaluation path (segments
with posterior averaging, the reference utterance) are the training core's own functions,
so a fold model's probabilities here equal the ones its training job recorded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ser_pipeline.errors import ConfigError
from ser_pipeline.training.checkpoint import FORMAT, load_model_dir, model_code_digest, split_state


class _NoSpeakers:
    """Speakers outside the training set: every index is -1 (models ignore them)."""

    train_speakers: list[str] = []

    @staticmethod
    def speaker_index(speakers):
        return np.full(len(speakers), -1, dtype=np.int64)


class LoadedModel:
    def __init__(self, path):
        from ser_pipeline.models import build_model

        self.path = Path(path)
        if not (self.path / "model.json").is_file() or not (self.path / "weights.pt").is_file():
            raise ConfigError(f"{self.path}: not a model folder (needs model.json and weights.pt)")
        self.record, tensors = load_model_dir(self.path)
        if self.record.get("format") != FORMAT:
            raise ConfigError(f"{self.path}: model folder format {self.record.get('format')} is not {FORMAT}; "
                              f"retrain it with this version of ser_pipeline")
        now = model_code_digest(self.record["arch"])
        if self.record.get("model_code") != now:
            raise ConfigError(f"{self.path}: trained with other model code (digest {self.record.get('model_code')}, "
                              f"this version has {now}): its weights may not mean the same here; retrain it "
                              f"(snakemake reruns its job) or use the ser_pipeline version that trained it")
        state, self.norm_stats = split_state(tensors)
        r = self.record
        self.model = build_model(r["arch"], r["input_dims"], r["n_classes"], r["hparams"],
                                 n_speakers=r.get("n_speakers"))
        if r["kind"] == "classical":
            self.model.load_state_tensors(state)
        else:
            self.model.load_state_dict(state)
            self.model.eval()
        self.classes = list(r["classes"])
        self.training = r["training"]

    @property
    def streams(self) -> list[str]:
        return list(self.record["input_dims"])

    def check_features(self, store_attrs: dict[str, dict]) -> None:
        """Refuse stores extracted with another feature config or model checksum than training's."""
        for stream, meta in self.record["features"].items():
            attrs = store_attrs.get(stream)
            if attrs is None:
                raise ConfigError(f"{self.path}: no features given for input stream '{stream}'")
            want = meta.get("config")
            got = attrs.get("config")
            if want is not None and got is not None and _feature_key(want) != _feature_key(got):
                raise ConfigError(f"{self.path}: stream '{stream}' was trained on feature config {want}, "
                                  f"the given features are {got}")
            want_sum = (meta.get("info") or {}).get("model_checksum")
            got_sum = (attrs.get("info") or {}).get("model_checksum")
            if want_sum and got_sum and want_sum != got_sum:
                raise ConfigError(f"{self.path}: stream '{stream}' was trained on features of model "
                                  f"{want_sum}, the given features come from {got_sum}")

    def predict(self, streams: dict[str, list[np.ndarray]], speakers: list[str],
                references: dict[str, list[np.ndarray]] | None = None, frame_rates: dict | None = None,
                utt_ids: list[str] | None = None) -> np.ndarray:
        """Class probabilities [N, C] for utterances given as raw store frames."""
        from ser_pipeline.training.data import apply_zscore, speaker_stats, speaker_zscore
        from ser_pipeline.training.fold_data import Part, transform
        from ser_pipeline.training.options import train_options

        opts = train_options({k: v for k, v in self.training.items() if k != "batch_size"})
        frame_rates = frame_rates or {s: m.get("frame_rate") for s, m in self.record["features"].items()}
        n = len(speakers)
        streams = transform(streams, opts, frame_rates)
        refs = transform(references, opts, frame_rates) if references else None
        mode = self.record.get("normalisation", "none")
        for s in list(streams):
            if mode == "zscore":
                streams[s] = apply_zscore(streams[s], self.norm_stats[s])
                if refs:
                    refs[s] = apply_zscore(refs[s], self.norm_stats[s])
            elif mode == "speaker":  # each speaker's statistics from its utterances given here
                stats = speaker_stats(streams[s], speakers)
                streams[s] = speaker_zscore(streams[s], speakers)
                if refs:
                    refs[s] = [(a - stats[spk][0]) / stats[spk][1] for a, spk in zip(refs[s], speakers)]
        if self.record["kind"] == "classical":
            return self.model.predict_proba(streams[self.model.streams[0]])
        part = Part(list(utt_ids or [str(i) for i in range(n)]), np.zeros(n, dtype=np.int64), list(speakers), streams)
        return self._neural_probs(part, refs, opts, frame_rates)

    def _neural_probs(self, part, refs, opts, frame_rates) -> np.ndarray:
        from ser_pipeline.training.fold_data import model_frame_rates
        from ser_pipeline.training.neural import Batcher, _rate, _segment, predict

        batcher = Batcher(self.model, _NoSpeakers(), "cpu")
        if opts["input_mode"] == "segments":
            from ser_pipeline.models.segments import average_segment_posteriors

            stream = next(iter(part.streams))
            rates = model_frame_rates(frame_rates, opts)
            frames = int(round(opts["segment_seconds"] * _rate(rates, stream, "segment_seconds")))
            seg, owner = _segment(part, frames)
            return average_segment_posteriors(predict(self.model, seg, batcher), owner, len(part))
        if "reference" in self.model.needs:
            if refs is None:
                raise ConfigError(f"{self.path}: this model conditions on a reference utterance of the "
                                  f"same speaker ({self.training['reference']}); none was given")
            return _predict_with_refs(self.model, part, refs, batcher)
        return predict(self.model, part, batcher)


def _predict_with_refs(model, part, refs, batcher) -> np.ndarray:
    import torch

    from ser_pipeline.training.data import length_buckets

    out = None
    model.eval()
    with torch.no_grad():
        for idx in length_buckets(part.lengths(), 32, None):
            batch = batcher(part, idx, {s: [refs[s][i] for i in idx] for s in part.streams})
            p = torch.softmax(model(batch).float(), dim=-1).cpu().numpy()
            if out is None:
                out = np.zeros((len(part), p.shape[1]), dtype=np.float32)
            out[idx] = p
    return out


def _feature_key(cfg: dict) -> dict:
    """The parts of a feature config that decide its output (batching knobs do not)."""
    return {k: v for k, v in cfg.items() if k not in ("batch_seconds", "batch_items")}

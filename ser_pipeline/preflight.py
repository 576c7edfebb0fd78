"""Checks that need the models themselves, run once before any job starts.

The schema and :func:`ser_pipeline.config.check_references` catch most mistakes while the
job graph is built, without importing torch. What only a model can say (an unknown
hyperparameter, a stream it does not read, a training option it cannot use) is checked
here by building every configured model on placeholder dimensions, so a typo stops the
run before hours of feature extraction, not in the first training job.
"""
from __future__ import annotations

from ser_pipeline.errors import ConfigError


def check_models(cfg: dict, source: str = "config") -> None:
    from ser_pipeline.models import build_model, model_class
    from ser_pipeline.training.options import train_options

    for name, m in cfg["models"].items():
        key = f"models.{name}"
        try:
            opts = train_options(m.get("train"), f"{key}.train")
            cls = model_class(m["arch"])
            if ("reference" in cls.needs) != bool(opts["reference"]):
                raise ConfigError(f"{key}.train.reference: arch '{m['arch']}' "
                                  + ("needs" if "reference" in cls.needs else "takes no") + " reference utterance")
            if set(m["inputs"]) != set(cls.streams):
                raise ConfigError(f"{key}.inputs: arch '{m['arch']}' reads streams {list(cls.streams)}, "
                                  f"the config gives {sorted(m['inputs'])}")
            if cls.kind == "classical" and opts["input_mode"] != "whole":
                raise ConfigError(f"{key}.train.input_mode: classical models take whole utterances")
            build_model(m["arch"], {s: 64 for s in cls.streams}, 4, m.get("hparams") or {}, n_speakers=8)
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(f"{source}: {msg if msg.startswith(key) else f'{key}: {msg}'}") from None

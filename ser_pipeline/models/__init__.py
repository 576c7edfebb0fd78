"""Model registry: config names -> ``nn.Module`` classes.

The training loop only ever calls :func:`build_model`, so every model exposes the
same surface: ``streams`` (which batch keys it reads), ``default_hparams()`` (the
complete list of knobs, shown in the config docs) and
``forward(batch) -> logits [B, n_classes]``. Hyperparameters are checked here
once, so a typo in a config fails at build time with the key named, instead of
being silently ignored for a whole cross-validation run.
"""
from __future__ import annotations

import copy
import numbers
from typing import Callable

from torch import nn

from ser_pipeline.errors import ConfigError

__all__ = [
    "MODELS",
    "HparamError",
    "register_model",
    "build_model",
    "resolve_hparams",
    "SerModel",
]

MODELS: dict[str, type] = {}


class HparamError(ConfigError, ValueError):
    """A bad model hyperparameter or input spec.

    Both a ConfigError (the CLI prints it without a traceback) and a ValueError
    (what the model contract promises).
    """


def register_model(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if name in MODELS:
            raise ValueError(f"model '{name}' registered twice")
        for attr in ("streams", "default_hparams"):
            if not hasattr(cls, attr):
                raise TypeError(f"model '{name}' ({cls.__name__}) lacks '{attr}'")
        cls.name = name
        MODELS[name] = cls
        return cls

    return deco


def resolve_hparams(cls: type, hparams: dict | None) -> dict:
    """Defaults overlaid with ``hparams``; unknown keys raise, naming the key."""
    defaults = cls.default_hparams()
    hparams = dict(hparams or {})
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise HparamError(
            f"unknown hyperparameter(s) {', '.join(repr(k) for k in unknown)} for model "
            f"'{getattr(cls, 'name', cls.__name__)}'; known: {', '.join(sorted(defaults))}"
        )
    out = copy.deepcopy(defaults)
    out.update(copy.deepcopy(hparams))
    return out


def check_input_dims(cls: type, input_dims: dict[str, int]) -> None:
    streams = tuple(cls.streams)
    name = getattr(cls, "name", cls.__name__)
    missing = [s for s in streams if s not in input_dims]
    extra = [s for s in input_dims if s not in streams]
    if missing or extra:
        raise HparamError(
            f"model '{name}' reads streams {list(streams)}, got input_dims for "
            f"{sorted(input_dims)} (missing {missing}, unexpected {extra})"
        )
    for s in streams:
        d = input_dims[s]
        if not isinstance(d, numbers.Integral) or isinstance(d, bool) or d < 1:
            raise HparamError(f"input_dims['{s}'] must be a positive int, got {d!r}")


def build_model(name: str, input_dims: dict[str, int], n_classes: int, hparams: dict) -> nn.Module:
    if name not in MODELS:
        raise HparamError(f"unknown model '{name}'; known: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    check_input_dims(cls, dict(input_dims))
    if not isinstance(n_classes, numbers.Integral) or isinstance(n_classes, bool) or n_classes < 2:
        raise HparamError(f"n_classes must be an int >= 2, got {n_classes!r}")
    return cls({k: int(v) for k, v in input_dims.items()}, int(n_classes), hparams)


class SerModel(nn.Module):
    """Common constructor plumbing; subclasses set ``streams`` and ``default_hparams``.

    Constructing a model directly (tests, notebooks) validates exactly like
    :func:`build_model`, so there is no unchecked path.
    """

    streams: tuple[str, ...] = ("audio",)
    name: str = ""

    @classmethod
    def default_hparams(cls) -> dict:
        raise NotImplementedError

    def __init__(self, input_dims: dict[str, int], n_classes: int, hparams: dict | None = None):
        super().__init__()
        check_input_dims(type(self), dict(input_dims))
        self.input_dims = {k: int(v) for k, v in input_dims.items()}
        self.n_classes = int(n_classes)
        self.hparams = resolve_hparams(type(self), hparams)

    def _bad(self, key: str, why: str) -> HparamError:
        return HparamError(f"model '{self.name}': hyperparameter '{key}' {why} (got {self.hparams[key]!r})")


# Importing the modules runs their @register_model decorators. Kept at the bottom
# because they import register_model from this package.
from ser_pipeline.models import pooling as _pooling  # noqa: E402,F401
from ser_pipeline.models import bimodal as _bimodal  # noqa: E402,F401
from ser_pipeline.models import ma_crnn as _ma_crnn  # noqa: E402,F401

"""Model registry and the contract every model follows.

The training core (:mod:`ser_pipeline.training.loop`) never branches on a model family.
A model is either

* a **neural** model, a :class:`SerModel` (``nn.Module``) that owns its objective:
  ``forward(batch) -> logits``, ``compute_objectives(batch) -> loss`` and, where one batch
  needs more than one optimisation step (a speaker adversary trained in turn with the
  encoder), ``training_step(batch, optimizers, progress)`` plus ``optimizer_groups()``; or
* a **classical** model, a :class:`ClassicalModel` (scikit-learn underneath) fitted on one
  pooled vector per utterance, with its hyperparameter chosen on the validation part.

Models declare what their batches must carry (``needs``) and nothing else pays for it.

Batch contract (a dict; tensors on the training device):

=====================  ==========================================================
``<stream>``           float [B, T, D] frames of each input stream (``audio``, ``text``)
``<stream>_mask``      bool [B, T], True = valid frame (valid frames first)
``label``              long [B] class index (training and evaluation batches)
``weight``             float [B] per-utterance loss weight (mean 1 over the training set)
``speaker``            long [B] index over the fold's training speakers, -1 for a speaker
                       outside them (``"speaker" in needs``)
``utt_id``             list[str] (``"utt_id" in needs``)
``ref_<stream>``       float [B, T_ref, D] and ``ref_<stream>_mask``: a reference utterance
                       of the same speaker chosen by the configured rule
                       (``"reference" in needs``)
=====================  ==========================================================

Arch names are found from the ``@register_model("name")`` decorators without importing
anything (:func:`arch_modules`); a module is imported only when a model of its arch is
built, so that a job's code digest (:mod:`ser_pipeline.codedeps`) covers exactly the
model module it runs, and adding a model is one module plus one config entry. Hyperparameters are checked once at build time: a typo fails with
the key named instead of being silently ignored for a whole cross-validation run.
"""
from __future__ import annotations

import copy
import importlib
import numbers
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ser_pipeline.errors import ConfigError

__all__ = [
    "arch_modules",
    "model_class",
    "ClassicalModel",
    "MODELS",
    "HparamError",
    "register_model",
    "build_model",
    "resolve_hparams",
    "SerModel",
]

MODELS: dict[str, type] = {}

NEEDS = frozenset({"speaker", "utt_id", "reference"})


def arch_modules() -> dict[str, str]:
    """{arch name: module}, read from the ``@register_model`` decorators without importing."""
    from ser_pipeline.codedeps import registered

    return registered("register_model", "ser_pipeline.models")


def model_class(name: str) -> type:
    """The class registered as ``name``, importing its module on first use.

    A class registered at run time (a notebook, a test) is found too; the workflow itself
    accepts only the archs its config schema lists.
    """
    if name in MODELS:
        return MODELS[name]
    modules = arch_modules()
    if name not in modules:
        raise HparamError(f"unknown model '{name}'; known: {', '.join(sorted(modules))}")
    if name not in MODELS:
        importlib.import_module(modules[name])
    return MODELS[name]


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
        bad = set(getattr(cls, "needs", ())) - NEEDS
        if bad:
            raise TypeError(f"model '{name}' needs {sorted(bad)}; batches can carry {sorted(NEEDS)}")
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


def build_model(name: str, input_dims: dict[str, int], n_classes: int, hparams: dict,
                n_speakers: int | None = None):
    """A ready model; ``n_speakers`` (training speakers of the fold) for models that need it."""
    cls = model_class(name)
    check_input_dims(cls, dict(input_dims))
    resolve_hparams(cls, hparams)  # an unknown key is reported before anything else
    if not isinstance(n_classes, numbers.Integral) or isinstance(n_classes, bool) or n_classes < 2:
        raise HparamError(f"n_classes must be an int >= 2, got {n_classes!r}")
    kwargs = {}
    if "speaker" in cls.needs:
        if n_speakers is None or int(n_speakers) < 2:
            raise HparamError(f"model '{name}' needs at least 2 training speakers, got {n_speakers!r}")
        kwargs["n_speakers"] = int(n_speakers)
    return cls({k: int(v) for k, v in input_dims.items()}, int(n_classes), hparams, **kwargs)


class _Checked:
    """Constructor plumbing shared by neural and classical models."""

    streams: tuple[str, ...] = ("audio",)
    needs: frozenset = frozenset()
    name: str = ""

    @classmethod
    def default_hparams(cls) -> dict:
        raise NotImplementedError

    def _setup(self, input_dims: dict[str, int], n_classes: int, hparams: dict | None) -> None:
        check_input_dims(type(self), dict(input_dims))
        self.input_dims = {k: int(v) for k, v in input_dims.items()}
        self.n_classes = int(n_classes)
        self.hparams = resolve_hparams(type(self), hparams)

    def _bad(self, key: str, why: str) -> HparamError:
        return HparamError(f"model '{self.name}': hyperparameter '{key}' {why} (got {self.hparams[key]!r})")


class SerModel(_Checked, nn.Module):
    """A neural model. Subclasses set ``streams`` and ``default_hparams`` and implement
    ``forward``; the defaults of the three hooks below train it with weighted
    cross-entropy and one optimiser. Override them (the model owns its loss, as in a
    SpeechBrain recipe's ``compute_objectives``) rather than adding branches to the core.

    Constructing a model directly (tests, notebooks) validates exactly like
    :func:`build_model`, so there is no unchecked path.
    """

    kind = "neural"

    def __init__(self, input_dims: dict[str, int], n_classes: int, hparams: dict | None = None):
        nn.Module.__init__(self)
        self._setup(input_dims, n_classes, hparams)

    # ------------------------------------------------------------ training hooks

    def compute_objectives(self, batch: dict) -> torch.Tensor:
        """The training loss of one batch: cross-entropy weighted by ``batch["weight"]``."""
        ce = F.cross_entropy(self(batch), batch["label"], reduction="none")
        return (ce * batch["weight"]).mean()

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameter groups that get an optimiser each (same settings, same schedule).

        A model whose ``training_step`` updates parts of itself in turn returns one group
        per part; every parameter must be in exactly one group.
        """
        return {"main": [p for p in self.parameters() if p.requires_grad]}

    def training_step(self, batch: dict, optimizers: dict, progress: float) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the numbers to log (``loss`` first).

        ``optimizers`` maps each group of :meth:`optimizer_groups` to its optimiser;
        ``progress`` runs from 0 to 1 over the whole training (for schedules such as the
        gradient-reversal ramp of Ganin et al.).
        """
        opt = optimizers["main"]
        loss = self.compute_objectives(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    def embed(self, batch: dict) -> torch.Tensor:
        """The utterance representation a speaker probe or t-SNE plot looks at ([B, E]).

        Models that have a natural one (an encoder output before the classifiers)
        override this; the default refuses rather than guessing.
        """
        raise NotImplementedError(f"model '{self.name}' defines no embedding")


class ClassicalModel(_Checked):
    """A non-neural model on one pooled vector per utterance (scikit-learn underneath).

    ``fit(train_x, train_y, val_x, val_y, groups)`` chooses its hyperparameter on the
    validation part (or, without one, by cross-validation over ``groups`` of the training
    part: never on the test part) and returns what it chose and the scores behind the
    choice; ``predict_proba(x)`` gives [N, n_classes] scores that sum to 1 per row.
    ``state_tensors()`` / ``load_state_tensors()`` carry the fitted model as tensors, so it
    is saved like a neural one (``torch.load(weights_only=True)``).
    """

    kind = "classical"

    def __init__(self, input_dims: dict[str, int], n_classes: int, hparams: dict | None = None):
        self._setup(input_dims, n_classes, hparams)

    def fit(self, train_x, train_y, val_x=None, val_y=None, groups=None) -> dict:
        raise NotImplementedError

    def predict_proba(self, x):
        raise NotImplementedError

    def state_tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError



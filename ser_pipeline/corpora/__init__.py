"""Corpus loaders and demo generators by name, so a config can say ``loader: iemocap``.

Each loader is a plain ``prepare_<corpus>(path, **options)`` function returning the
normalised manifest (lhotse-recipe style), registered with ``@register_loader("name")`` in
its own module; a module may also define ``input_files(path, **options)`` listing the label
files the manifest is read from, so that editing one reruns the manifest. A demo generator
(``@register_demo("loader name")``) writes a corpus in that loader's real layout, which the
same loader then reads. Adding a corpus is one module: the names are found by reading the
decorators (:func:`ser_pipeline.codedeps.registered`) and modules are imported only when
used, so a job's code digest covers only the loader it runs.
"""
from __future__ import annotations

import importlib
import inspect

import pandas as pd

from ser_pipeline.errors import ConfigError

__all__ = ["register_loader", "register_demo", "register_eval_rule", "loader_function", "demo_function",
           "eval_rule_function", "prepare_corpus"]

_FUNCS: dict[tuple[str, str], object] = {}


def _register(kind: str, name: str):
    def deco(fn):
        if (kind, name) in _FUNCS and _FUNCS[(kind, name)] is not fn:
            raise ValueError(f"{kind} '{name}' registered twice")
        _FUNCS[(kind, name)] = fn
        return fn
    return deco


def register_loader(name: str):
    return _register("loader", name)


def register_demo(name: str):
    return _register("demo", name)


def register_eval_rule(name: str):
    """A cross-corpus scoring rule: ``fn(manifest_rows, predicted_labels) -> (used, correct, text)``."""
    return _register("eval_rule", name)


def _lookup(kind: str, decorator: str, name: str):
    from ser_pipeline.codedeps import registered

    names = registered(decorator, "ser_pipeline.corpora")
    if name not in names:
        raise ConfigError(f"corpus {kind}: '{name}' unknown; known: {sorted(names)}")
    importlib.import_module(names[name])
    return _FUNCS[(kind, name)]


def loader_function(kind: str):
    return _lookup("loader", "register_loader", kind)


def demo_function(kind: str):
    return _lookup("demo", "register_demo", kind)


def eval_rule_function(name: str):
    return _lookup("eval_rule", "register_eval_rule", name)


def prepare_corpus(kind: str, path=None, *, corpus: str | None = None, **options) -> pd.DataFrame:
    """Run the loader registered as ``kind``.

    ``path`` is the loader's first argument (IEMOCAP root, CSV file); it may instead be given
    by its own name in ``options``. ``corpus`` renames the manifest's corpus column to the
    config's name for it. Option mistakes become ConfigErrors (naming the accepted options)
    rather than TypeErrors from deep inside a Snakemake job.
    """
    loader = loader_function(kind)
    args = () if path is None else (path,)
    try:
        inspect.signature(loader).bind(*args, **options)
    except TypeError as e:
        accepted = list(inspect.signature(loader).parameters)
        raise ConfigError(f"options of corpus loader '{kind}': {e} (accepted: {accepted})") from None
    df = loader(*args, **options)
    if corpus:
        df["corpus"] = corpus
    return df

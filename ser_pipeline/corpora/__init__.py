"""Corpus loaders by name, so a config can say ``loader: iemocap`` plus loader options.

Each loader is a plain ``prepare_<corpus>(...)`` function returning the normalised manifest
(lhotse-recipe style); adding a corpus means adding one module and one entry in
:data:`LOADERS`. Modules are imported only when their loader runs, so a manifest job's code
digest covers only the loader it uses. The demo corpus is not a loader:
``generate_demo_corpus`` writes an IEMOCAP tree that ``iemocap`` reads.
"""
from __future__ import annotations

import importlib
import inspect

import pandas as pd

from ser_pipeline.errors import ConfigError

# loader name -> (module under ser_pipeline.corpora, function)
LOADERS = {
    "iemocap": ("iemocap", "prepare_iemocap"),
    "csv": ("csv_corpus", "prepare_csv_corpus"),
    "ravdess": ("ravdess", "prepare_ravdess"),
    "crema_d": ("crema_d", "prepare_crema_d"),
    "emodb": ("emodb", "prepare_emodb"),
}

__all__ = ["LOADERS", "loader_function", "prepare_corpus"]


def loader_function(kind: str):
    if kind not in LOADERS:
        raise ConfigError(f"corpus loader: '{kind}' unknown; known loaders are {sorted(LOADERS)}")
    module, func = LOADERS[kind]
    return getattr(importlib.import_module(f"ser_pipeline.corpora.{module}"), func)


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

"""Corpus loaders by name, so a config can say ``corpus: {kind: iemocap, root: ...}``.

Each loader is a plain ``prepare_<corpus>(...)`` function returning the normalised manifest
(lhotse-recipe style); adding a corpus means adding one module and one entry here.
"""
from __future__ import annotations

import inspect

import pandas as pd

from ser_pipeline.corpora.csv_corpus import prepare_csv_corpus
from ser_pipeline.corpora.demo import generate_demo_corpus, prepare_demo_corpus
from ser_pipeline.corpora.iemocap import prepare_iemocap
from ser_pipeline.errors import ConfigError

LOADERS = {"iemocap": prepare_iemocap, "csv": prepare_csv_corpus, "demo": prepare_demo_corpus}

__all__ = ["LOADERS", "prepare_corpus", "prepare_iemocap", "prepare_csv_corpus",
           "prepare_demo_corpus", "generate_demo_corpus"]


def prepare_corpus(kind: str, **options) -> pd.DataFrame:
    """Run the loader registered as ``kind``; option mistakes become ConfigErrors, not TypeErrors."""
    if kind not in LOADERS:
        raise ConfigError(f"corpus kind: '{kind}' unknown; known kinds are {sorted(LOADERS)}")
    loader = LOADERS[kind]
    try:
        inspect.signature(loader).bind(**options)
    except TypeError as e:
        params = [p for p in inspect.signature(loader).parameters]
        raise ConfigError(f"corpus options for kind '{kind}': {e} (accepted: {params})") from None
    return loader(**options)

"""The papers' own numbers (ser_pipeline/data/paper_results.yaml), read-only."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from ser_pipeline.errors import ConfigError

PAPER_FILE = Path(__file__).resolve().parent.parent / "data" / "paper_results.yaml"


@lru_cache(maxsize=1)
def paper_results() -> dict:
    return yaml.safe_load(PAPER_FILE.read_text())


def paper_entry(key: str | None) -> dict:
    if not key:
        return {}
    data = paper_results()
    if key not in data:
        raise ConfigError(f"experiments.*.paper: '{key}' is not in {PAPER_FILE.name}; known: {sorted(data)}")
    return data[key]

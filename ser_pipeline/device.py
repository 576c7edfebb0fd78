"""One place that decides cpu vs cuda, so every stage falls back to the CPU the same way."""
from __future__ import annotations

import os


def resolve_device(requested: str | None = "auto") -> str:
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from ser_pipeline.errors import ConfigError
        raise ConfigError(f"device: '{requested}' was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return requested


def set_threads(n: int | None) -> None:
    """Match torch's intra-op threads to the cores Snakemake gave the job."""
    import torch

    n = int(n or os.environ.get("SER_THREADS", 0) or 0)
    if n > 0:
        torch.set_num_threads(n)

"""The extractor contract and registry.

An extractor turns a batch of waveforms (or texts) into per-utterance frame matrices.
Everything around it (reading audio, cropping, speed perturbation, length bucketing,
device choice, streaming into the Zarr store) lives in ``ser_pipeline.features.runner``
so each extractor stays a small pure function of its config.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

_REGISTRY: dict[str, type["Extractor"]] = {}


def register(name: str) -> Callable[[type["Extractor"]], type["Extractor"]]:
    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"extractor '{name}' registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def available() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def get_extractor(name: str, config: dict, device: str = "cpu") -> "Extractor":
    _import_all()
    if name not in _REGISTRY:
        from ser_pipeline.errors import ConfigError
        raise ConfigError(f"unknown extractor '{name}'; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](config, device)


def _import_all() -> None:
    # Importing the modules runs their @register decorators.
    import importlib
    for mod in ("lld", "spectrogram", "fbank_pitch", "egemaps", "wav2vec1", "hf_ssl", "text"):
        try:
            importlib.import_module(f"ser_pipeline.features.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"ser_pipeline.features.{mod}":
                raise


class Extractor:
    """Base class. Subclasses set the class attributes and implement ``extract_batch``.

    input_kind: "audio" (extract_batch gets waveforms) or "text" (it gets strings).
    frame_rate: frames per second of the output, or None for one vector per utterance.
    """

    name: str = ""
    input_kind: str = "audio"
    frame_rate: float | None = None
    supports_gpu: bool = False

    def __init__(self, config: dict, device: str = "cpu"):
        self.config = dict(config)
        self.device = device

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def extract_batch(self, items: list, sample_rate: int = 16000) -> list:
        """audio: list of 1-D float32 arrays -> list of float32 [T_i, dim] arrays.

        text: list of str -> list of (float32 [n_tokens, dim], list[str] tokens).
        """
        raise NotImplementedError

    def info(self) -> dict:
        """Extra store attributes: model checksum, library versions, anything that pins output."""
        return {}


def as_float32_frames(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    return np.ascontiguousarray(x)

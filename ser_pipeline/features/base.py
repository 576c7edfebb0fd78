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
    from ser_pipeline.codedeps import registered

    return sorted(registered("register", "ser_pipeline.features"))


def extractor_class(name: str) -> type["Extractor"]:
    """The class registered as ``name``, importing only its module (found from the decorators)."""
    import importlib

    from ser_pipeline.codedeps import registered

    modules = registered("register", "ser_pipeline.features")
    if name not in modules:
        from ser_pipeline.errors import ConfigError
        raise ConfigError(f"unknown extractor '{name}'; known: {', '.join(sorted(modules))}")
    importlib.import_module(modules[name])
    return _REGISTRY[name]


def get_extractor(name: str, config: dict, device: str = "cpu") -> "Extractor":
    return extractor_class(name)(config, device)


class Extractor:
    """Base class. Subclasses set the class attributes and implement ``extract_batch``.

    input_kind: "audio" (extract_batch gets waveforms) or "text" (it gets strings).
    frame_rate: frames per second of the output, or None for one vector per utterance.
    supports_gpu: runs on CUDA when the job has one (otherwise the job asks for no GPU).
    threaded: its work is large tensor operations that keep several cores busy. An extraction
    job of any other extractor claims one core, so that on a small machine it runs beside
    other jobs instead of holding a second core idle (config.THREADED_EXTRACTORS mirrors
    this flag for the workflow, which must not import the extractors; a test keeps them equal).
    """

    name: str = ""
    input_kind: str = "audio"
    frame_rate: float | None = None
    supports_gpu: bool = False
    threaded: bool = False

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

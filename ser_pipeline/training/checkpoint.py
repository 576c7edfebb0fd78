"""A trained model as a folder a later command can load: tensors plus one JSON.

``weights.pt`` holds tensors only (the model's state and the normalisation statistics), so
it loads with ``torch.load(weights_only=True)``: no pickled code runs. ``model.json`` holds
everything else a prediction needs: the model's config and arch, the class list and label
mapping, input dimensions, the feature configs and the extractor checksums of the stores
the model was trained on, and the code digest of the job that trained it. A folder from
other code or another feature config is refused by whoever loads it, with the reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ser_pipeline.atomic import atomic_path, write_json

FORMAT = 1
# The code a saved model's numbers depend on besides its weights: how inputs are transformed
# and batched. With the arch's own module it makes the folder's `model_code` digest.
MODEL_CODE = ("ser_pipeline.training.fold_data", "ser_pipeline.training.data", "ser_pipeline.training.neural",
              "ser_pipeline.inference")


def model_code_digest(arch: str) -> str:
    from ser_pipeline.codedeps import code_digest
    from ser_pipeline.models import arch_modules

    return code_digest([arch_modules()[arch], *MODEL_CODE])


def save_model_dir(path, model, record: dict, norm: dict) -> None:
    """Write ``weights.pt`` and ``model.json`` into ``path`` (built aside, then renamed)."""
    tensors = {}
    state = model.state_tensors() if getattr(model, "kind", "neural") == "classical" else model.state_dict()
    for k, v in state.items():
        tensors[f"model.{k}"] = v.detach().cpu().clone()
    for stream, (mean, std) in (norm.get("stats") or {}).items():
        tensors[f"norm.{stream}.mean"] = torch.from_numpy(np.asarray(mean, dtype=np.float32))
        tensors[f"norm.{stream}.std"] = torch.from_numpy(np.asarray(std, dtype=np.float32))
    with atomic_path(path) as tmp:
        Path(tmp).mkdir(parents=True)
        torch.save(tensors, Path(tmp) / "weights.pt")
        write_json(Path(tmp) / "model.json", {"format": FORMAT, "normalisation": norm.get("mode", "none"),
                                              "model_code": model_code_digest(record["arch"]), **record})


def load_model_dir(path) -> tuple[dict, dict]:
    """(record, tensors) of a saved model folder; tensors loaded without running pickled code."""
    path = Path(path)
    record = json.loads((path / "model.json").read_text())
    tensors = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    return record, tensors


def split_state(tensors: dict) -> tuple[dict, dict]:
    """(model state, {stream: (mean, std)}) from a weights.pt dict."""
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    norm = {}
    for k, v in tensors.items():
        if k.startswith("norm.") and k.endswith(".mean"):
            stream = k[len("norm."):-len(".mean")]
            norm[stream] = (v.numpy(), tensors[f"norm.{stream}.std"].numpy())
    return state, norm

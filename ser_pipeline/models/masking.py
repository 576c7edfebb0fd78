"""Masked reductions shared by every model.

Batches are zero-padded to the longest utterance, and a model's output for an
utterance must not depend on what it was batched with. Every reduction over time
therefore goes through these helpers, so there is exactly one place that decides
what "ignore the padding" means: padded frames contribute nothing to a mean, can
never win a max, and get exactly zero attention weight.

Convention everywhere: ``mask`` is bool, True = valid frame, shaped like the
leading dimensions of the tensor it describes ([B, T] for [B, T, D] features).

An all-padding row (an utterance with no valid frame) gives zeros rather than
NaN, so one empty item cannot poison a whole batch's gradients; the data
pipeline is expected to drop such items, this is only a guard.
"""
from __future__ import annotations

import torch

__all__ = [
    "masked_mean",
    "masked_max",
    "masked_softmax",
    "lengths_to_mask",
    "mask_to_lengths",
    "expand_mask",
]


def expand_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Append singleton dims so a [B, T] mask broadcasts against [B, T, ...]."""
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be bool (True = valid), got {mask.dtype}")
    while mask.dim() < like.dim():
        mask = mask.unsqueeze(-1)
    return mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int = 1) -> torch.Tensor:
    # masked_fill rather than x * mask: padding may hold -inf (see ma_crnn) and
    # -inf * 0 is NaN.
    m = expand_mask(mask, x)
    total = x.masked_fill(~m, 0.0).sum(dim)
    count = m.to(x.dtype).sum(dim).clamp_min(1.0)
    return total / count


def masked_max(x: torch.Tensor, mask: torch.Tensor, dim: int = 1) -> torch.Tensor:
    # Padding is -inf so it can never be the max even when all valid values are
    # negative (the border case Ma et al. 2018 describe for zero padding).
    m = expand_mask(mask, x)
    out = x.masked_fill(~m, float("-inf")).amax(dim)
    any_valid = m.any(dim)
    return torch.where(any_valid, out, torch.zeros_like(out))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` where masked-out entries get weight exactly 0.

    ``mask`` must broadcast against ``scores`` (e.g. [B, 1, T_audio] against
    [B, T_text, T_audio]). Rows without any valid entry return all zeros.
    """
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be bool (True = valid), got {mask.dtype}")
    mask = mask.expand_as(scores)
    filled = scores.masked_fill(~mask, float("-inf"))
    any_valid = mask.any(dim, keepdim=True)
    # A row of only -inf would give NaN; give it a harmless finite row instead
    # and zero it below.
    filled = torch.where(any_valid, filled, torch.zeros_like(filled))
    w = torch.softmax(filled, dim=dim)
    return w.masked_fill(~mask, 0.0)


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    lengths = torch.as_tensor(lengths)
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(-1)


def mask_to_lengths(mask: torch.Tensor, require_prefix: bool = True) -> torch.Tensor:
    """Valid lengths of a [B, T] mask (int64, on the mask's device).

    Recurrent and convolutional models need valid frames to come first (they pack
    by length / rely on padding being at the end); ``require_prefix`` turns a
    mask with holes into a clear error instead of silently wrong outputs.
    """
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be bool (True = valid), got {mask.dtype}")
    lengths = mask.sum(-1)
    if require_prefix and not torch.equal(mask, lengths_to_mask(lengths, mask.shape[-1])):
        raise ValueError(
            "mask is not a prefix mask (valid frames must come first, padding last)"
        )
    return lengths

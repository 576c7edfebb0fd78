"""Bidirectional RNNs over padded batches, the same numbers on every device, fast on the CPU.

A packed sequence keeps padding out of both directions, but on the CPU PyTorch runs a packed
LSTM step by step through autograd: in the bimodal model's training step the packed
encoders' backward pass took two thirds of the time. The CPU path here gives the same
outputs with two dense passes per layer, which PyTorch runs through its fused (oneDNN)
kernels: the forward direction over the padded batch as it is (steps past a sequence's end
only see what came before them, and are zeroed afterwards), and the backward direction
over the batch with each sequence's valid steps reversed in place, so that it too starts at
the sequence's last valid step and never reads padding. ``benchmarks/bench_birnn.py`` times
the two paths side by side; tests/unit/test_birnn.py checks outputs and gradients equal the
packed ones. On CUDA the packed path stays (cuDNN handles packing natively).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ser_pipeline.models.masking import lengths_to_mask

_FUNCTIONS = {"LSTM": torch.lstm, "GRU": torch.gru}


def reversal_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T] time index that reverses each row's first ``length`` steps and keeps the rest."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(0)
    n = lengths.unsqueeze(1)
    return torch.where(t < n, n - 1 - t, t)


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _direction(rnn: nn.RNNBase, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
    kind = type(rnn).__name__
    names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
    if rnn.bias:
        names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
    weights = [getattr(rnn, n) for n in names]
    h0 = x.new_zeros(1, x.shape[0], rnn.hidden_size)
    hx = (h0, h0) if kind == "LSTM" else h0
    return _FUNCTIONS[kind](x, hx, weights, rnn.bias, 1, 0.0, rnn.training, False, True)[0]


def _dense(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    index = reversal_index(lengths, x.shape[1])
    for layer in range(rnn.num_layers):
        if layer and rnn.dropout and rnn.training:
            x = F.dropout(x, rnn.dropout, training=True)
        forward = _direction(rnn, x, layer, "")
        backward = _take(_direction(rnn, _take(x, index), layer, "_reverse"), index)
        x = torch.cat([forward, backward], dim=-1)
    return x


def _packed(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    packed = pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
    out, _ = rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out


def bidirectional(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, path: str = "auto") -> torch.Tensor:
    """Every step's output of a batch-first bidirectional ``rnn`` ([B, T, 2H]); zero past each
    sequence's length. ``path``: auto (dense on the CPU, packed elsewhere), dense or packed."""
    if (not (rnn.bidirectional and rnn.batch_first) or type(rnn).__name__ not in _FUNCTIONS
            or getattr(rnn, "proj_size", 0)):
        raise ValueError("bidirectional() needs a batch-first bidirectional nn.LSTM (no projection) or nn.GRU")
    if path == "auto":
        path = "dense" if x.device.type == "cpu" else "packed"
    out = (_dense if path == "dense" else _packed)(rnn, x, lengths)
    return out.masked_fill(~lengths_to_mask(lengths, x.shape[1]).unsqueeze(-1), 0.0)


def last_and_first(out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, T, 2H] outputs -> [B, 2H]: the forward direction at the last valid step and the
    backward direction at the first (each direction's final state, h_n of the top layer)."""
    hidden = out.shape[-1] // 2
    last = (lengths.clamp_min(1) - 1).view(-1, 1, 1).expand(-1, 1, hidden)
    return torch.cat([out[..., :hidden].gather(1, last).squeeze(1), out[:, 0, hidden:]], dim=-1)

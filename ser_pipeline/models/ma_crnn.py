"""Ma et al. (2018) masked CNN + BiRNN (``ma_crnn``) and its padding-safe building blocks."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ser_pipeline.models import SerModel, register_model
from ser_pipeline.models.birnn import bidirectional, last_and_first
from ser_pipeline.models.masking import lengths_to_mask, mask_to_lengths

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def pooled_time_mask(mask: torch.Tensor, pool_t: int, out_len: int | None = None) -> torch.Tensor:
    """Mask after non-overlapping time pooling: ``ceil(len / pool_t)`` valid steps.

    Ceil (not floor) so that a trailing partial window of valid frames survives
    and an utterance shorter than the window still has one step.
    """
    lengths = mask_to_lengths(mask)
    new = torch.div(lengths + pool_t - 1, pool_t, rounding_mode="floor")
    if out_len is None:
        out_len = math.ceil(mask.shape[-1] / pool_t)
    return lengths_to_mask(new, out_len)


def masked_max_pool2d(
    y: torch.Tensor, mask: torch.Tensor, pool: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping max-pool of [B, C, T, F] that never lets padding win.

    Returns the pooled map (zero on padded steps) and the pooled [B, T'] mask.
    """
    pt, pf = pool
    tmask = mask[:, None, :, None]
    if pt == 1 and pf == 1:
        return y.masked_fill(~tmask, 0.0), mask
    y = y.masked_fill(~tmask, float("-inf"))
    T, Fq = y.shape[-2:]
    pad_t = (-T) % pt
    pad_f = (-Fq) % pf
    if pad_t or pad_f:
        y = F.pad(y, (0, pad_f, 0, pad_t), value=float("-inf"))
    out = F.max_pool2d(y, kernel_size=(pt, pf), stride=(pt, pf))
    new_mask = pooled_time_mask(mask, pt, out.shape[-2])
    # Windows made only of padding are -inf; Eq. 1 sets them back to zero.
    return out.masked_fill(~new_mask[:, None, :, None], 0.0), new_mask


def bidirectional_last_first(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, T, D] -> [B, 2H]: forward state at t = len, backward state at t = 1.

    Padding never enters either direction (see models/birnn.py).
    """
    return last_and_first(bidirectional(rnn, x, lengths), lengths)


def _pair(v, key: str, model: "MaCRNN") -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if (
        not isinstance(v, (list, tuple))
        or len(v) != 2
        or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in v)
    ):
        raise model._bad(key, "entries must be positive ints or [time, freq] pairs")
    return int(v[0]), int(v[1])


@register_model("ma_crnn")
class MaCRNN(SerModel):
    """Ma et al. (2018): masked CNN + BiRNN over whole, variable-length spectrograms.

    Input: ``batch["audio"]`` [B, T, F] log-power spectrogram frames (F = 400 bins,
    0-4 kHz at 10 Hz resolution, z-normalised by the caller), zero-padded, with
    ``batch["audio_mask"]`` [B, T]. The spectrogram is treated as a one-channel image
    over (time, frequency).

    The point of the paper is that a padded utterance in a batch gives exactly the
    output it gives alone (padding in training, none at prediction). That needs
    three things, all implemented here and unit-tested:

    1. Eq. 1: every convolution output is multiplied by the time mask, so the next
       convolution sees zeros beyond the last valid frame, exactly the implicit zero
       padding an unpadded utterance gets ("same" padding, stride 1).
    2. Max-pooling borders. The paper's example: a window holding the last valid
       value y_V < 0 and a padding zero returns 0 instead of y_V. Its stated fix
       ("y_V will be masked as zero") is ambiguous and, read literally, still
       changes the value; we use the exact form: padded positions are set to -inf
       before pooling, the time axis is padded with -inf to a multiple of the window,
       and the new mask keeps ``ceil(len / pool_t)`` steps. A window is valid iff it
       contains at least one valid frame, so the border window returns the max of
       its valid frames only, which is what the same utterance gives unpadded
       (ceil-mode pooling). Pooled padding is then reset to 0 (Eq. 1 again).
    3. The BiRNN runs on packed sequences; the utterance summary is the forward
       state at the last valid step t = V and the backward state at t = 1 (h_n of a
       packed bidirectional RNN), concatenated, as Sec. 4.2 specifies.

    Topology (Fig. 2 is an image the text does not describe; Ma "use the similar ...
    neural network as [Satt et al. 2017]", whose text is not in our library either).
    Our choice, in the spirit of Satt: three conv2d blocks over (time, frequency)
    with small kernels (5x5, 5x5, 3x3) and 16/32/32 channels, ReLU, max-pooling
    mostly over frequency ((1,4), (2,4), (2,5): 400 bins -> 5, 10 ms -> 40 ms steps),
    then one BiLSTM layer with 128 units per direction (256 together), then one FC
    layer of 64 ReLU units and the output layer. No batch norm: its training-mode
    statistics would include padded positions and break invariance. Dropout (0.3,
    not given by either paper) sits on the BiRNN summary and after the FC layer; the
    conv blocks share few weights and get none.

    The same network serves the fixed-length baseline (3 s segments from
    :mod:`ser_pipeline.models.segments`); only the data handling differs.
    """

    streams = ("audio",)

    @classmethod
    def default_hparams(cls) -> dict:
        return {
            "conv_channels": [16, 32, 32],
            "kernel_sizes": [[5, 5], [5, 5], [3, 3]],  # (time, freq)
            "pool_sizes": [[1, 4], [2, 4], [2, 5]],  # (time, freq), non-overlapping
            "activation": "relu",
            "rnn_type": "lstm",
            "rnn_hidden": 128,  # per direction
            "rnn_layers": 1,
            "fc_units": 64,  # 0 = no hidden FC layer
            "dropout": 0.3,
        }

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        hp = self.hparams
        chans = hp["conv_channels"]
        if not isinstance(chans, (list, tuple)) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in chans
        ):
            raise self._bad("conv_channels", "must be a list of positive ints")
        for key in ("kernel_sizes", "pool_sizes"):
            if not isinstance(hp[key], (list, tuple)) or len(hp[key]) != len(chans):
                raise self._bad(key, f"must be a list with one entry per conv layer ({len(chans)})")
        kernels = [_pair(k, "kernel_sizes", self) for k in hp["kernel_sizes"]]
        pools = [_pair(p, "pool_sizes", self) for p in hp["pool_sizes"]]
        if hp["activation"] not in _ACTIVATIONS:
            raise self._bad("activation", f"must be one of {sorted(_ACTIVATIONS)}")
        if hp["rnn_type"] not in ("lstm", "gru"):
            raise self._bad("rnn_type", "must be 'lstm' or 'gru'")
        for key in ("rnn_hidden", "rnn_layers"):
            if not isinstance(hp[key], int) or hp[key] < 1:
                raise self._bad(key, "must be an int >= 1")
        if not isinstance(hp["fc_units"], int) or hp["fc_units"] < 0:
            raise self._bad("fc_units", "must be an int >= 0")
        p = hp["dropout"]
        if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise self._bad("dropout", "must be a number in [0, 1)")

        self.pools = pools
        self.convs = nn.ModuleList()
        self.acts = nn.ModuleList()
        in_c, n_freq = 1, self.input_dims["audio"]
        for c, k, pl in zip(chans, kernels, pools):
            self.convs.append(nn.Conv2d(in_c, c, kernel_size=k, padding="same"))
            self.acts.append(_ACTIVATIONS[hp["activation"]]())
            in_c = c
            n_freq = math.ceil(n_freq / pl[1])
        self.rnn_input = in_c * n_freq
        rnn_cls = nn.LSTM if hp["rnn_type"] == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            self.rnn_input,
            hp["rnn_hidden"],
            num_layers=hp["rnn_layers"],
            batch_first=True,
            bidirectional=True,
            dropout=float(p) if hp["rnn_layers"] > 1 else 0.0,
        )
        head: list[nn.Module] = [nn.Dropout(float(p))]
        d = 2 * hp["rnn_hidden"]
        if hp["fc_units"]:
            head += [nn.Linear(d, hp["fc_units"]), nn.ReLU(), nn.Dropout(float(p))]
            d = hp["fc_units"]
        head.append(nn.Linear(d, n_classes))
        self.head = nn.Sequential(*head)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv stack: [B, T, F] -> ([B, T', C * F'], mask [B, T'])."""
        y = x.masked_fill(~mask.unsqueeze(-1), 0.0).unsqueeze(1)  # [B, 1, T, F]
        for conv, act, pool in zip(self.convs, self.acts, self.pools):
            y = act(conv(y))
            y = y * mask[:, None, :, None].to(y.dtype)  # Eq. 1
            y, mask = masked_max_pool2d(y, mask, pool)
        B, C, T, Fq = y.shape
        return y.permute(0, 2, 1, 3).reshape(B, T, C * Fq), mask

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["audio"]
        mask = batch.get("audio_mask")
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        mask_to_lengths(mask)  # fail early on a non-prefix mask
        seq, mask = self.encode(x, mask)
        summary = bidirectional_last_first(self.rnn, seq, mask_to_lengths(mask))
        return self.head(summary)

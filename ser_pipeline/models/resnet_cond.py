"""Triantafyllopoulos, Liu & Schuller (2021), "Deep speaker conditioning for SER": the three
neural systems of Tables 2 and 3, as padding-safe, variable-length models.

* ``resnet``: the baseline ResNet (ResNet-NORM is the same arch trained on per-speaker
  normalised features: a training option of the core, not a model).
* ``two_channel_resnet``: the same network with a second input channel holding a neutral
  utterance of the same speaker (*TwoChannel*, Fig. 1a).
* ``eresnet``: the main ResNet with every residual block conditioned on an embedding of
  that neutral utterance computed by a small ResNet (Fig. 1b, 1c).

All three read ``batch["audio"]`` [B, T, F]: log-spectrogram frames (25 ms / 10 ms,
peak-normalised per segment; F = 201 by default), a one-channel image over (time,
frequency). The two reference models also read ``batch["ref_audio"]`` [B, T_ref, F] and
``batch["ref_audio_mask"]`` (``needs = {"reference"}``).

What the paper states and we follow: 8 residual blocks of two convolutions each with batch
norm and ReLU; then a convolution over the frequency axis only; temporal average pooling
(so any length works: fixed-length crops in training, whole utterances at test); two linear
layers with a ReLU between. The embedding sub-network: 4 standard residual blocks, a
frequency-axis convolution, temporal average pooling, one linear layer. Each conditional
block maps the embedding to its channel count and adds it to the output of both of its
convolutions. TwoChannel is the baseline with two input channels.

Left open by the paper (Fig. 1 is an image the text does not describe), decided here:

* Block: the basic block of He et al. (2016): ``conv(k, stride s) -> BN -> ReLU -> conv(k)
  -> BN``, plus the shortcut, then ReLU. The shortcut is the identity, or a 1x1 convolution
  with stride s followed by BN (He's option B) where the channel count or stride changes.
  Convolutions have no bias (BN follows each). No stem convolution before block 1 (the
  paper names none; block 1's projection shortcut maps the input channels up).
* Conditioning (Fig. 1c, with the N-HANS code by two of the authors as the reading of
  "maps it to the appropriate dimension"): one linear layer per convolution (two per
  block), weights and bias initialised to zero, whose output is broadcast over time and
  frequency and added to the convolution output before its batch norm. At initialisation
  the conditioning therefore adds exactly zero and eResNet's main path is the plain ResNet
  (unit-tested). In training mode BN removes the batch mean of the added vector, so what
  the network learns from it is the difference between the speakers of a batch; in eval
  mode the running statistics fix the offset and the vector shifts each channel.
  N-HANS also adds learnt time/frequency position embeddings; the SER paper does not
  mention them and we leave them out.
* Widths, kernels, strides (the paper gives none). Kernel 3x3 everywhere (odd kernels are
  required: see the mask rule). Paper scale (IEMOCAP on a GPU, the defaults):
  main channels 16-16-32-32-64-64-128-128 with stride (2, 2) over (time, frequency) in
  the first convolution of blocks 3, 5 and 7 (201 bins -> 26, 10 ms -> 80 ms steps), a
  frequency convolution to 128 channels, 128 hidden linear units. Embedding sub-network:
  channels 16-32-64-128, stride (2, 2) in blocks 1-3, frequency convolution to 128
  channels, embedding size 128. Suggested CPU demo (same topology, narrower, strided
  early): channels 4-4-8-8-16-16-32-32, strides (2, 4) in block 1 and (2, 2) in blocks 3,
  5, 7, freq_channels 32, fc_units 32, dropout 0.2; embedding channels 4-8-16-16, strides
  (2, 4), (2, 2), (2, 2), (1, 1), emb_freq_channels 32, emb_dim 16.
* Frequency-axis convolution: kernel (1, F') over all F' remaining bins with no padding, so
  it collapses frequency to one; followed by BN and ReLU as in the blocks (N-HANS' last
  convolution does the same), so the pooled vector is non-negative.
* Input normalisation (``input_bn``, default on): a batch norm on the input channel(s),
  over valid frames. The log-spectrogram's values sit far from zero (natural log of the
  magnitude, roughly -16 to 3); centring them makes the convolutions' zero padding at the
  frequency edges and utterance borders mean "average level" instead of "very loud".
  For speaker-normalised input (ResNet-NORM) it is close to the identity.
* Dropout (``dropout``, default 0.3) before each of the two linear layers.
* TwoChannel alignment (``ref_align``). The second channel must cover the utterance's
  frames. ``"cycle"`` (default): the reference's valid frames are repeated cyclically to the
  utterance's valid length (cropped when longer), zero beyond it, so every frame of the
  utterance has reference content beside it whatever the two lengths. ``"crop"``: the
  reference's first frames up to the utterance's length, zero after the reference ends.
  Either depends only on the two valid lengths, never on padding.
* Embedding sub-network: the same block, kernel size, ``input_bn`` and ``bn_momentum`` as
  the main network; its input is the whole reference utterance as the batch gives it
  (cropping references in training is a data-side choice of the core); its temporal pooling
  averages over the reference's valid frames only.

Padding never changes an output (eval mode), for the utterance or the reference:

1. Every convolution reads zeros beyond the last valid frame, exactly the "same" zero
   padding the utterance gets alone: the input is zeroed there, the batch norm feeding a
   block's second convolution zeroes its output there, and each block's output (ReLU of
   the residual sum) is zeroed there (Eq. 1 of Ma et al. 2018).
2. Strided convolutions (kernel k odd, padding (k - 1) / 2, stride s): the output at step j
   reads input steps ``j*s - (k-1)/2 .. j*s + (k-1)/2``; for the ``ceil(L / s)`` steps the
   utterance has alone (the conv output length ``floor((L - 1) / s) + 1``) these reach at
   most ``(k-1)/2`` steps past the last valid frame, zeros in both cases. The new mask
   keeps ``ceil(L / s)`` steps. Frequency is never padded per utterance (F is fixed).
3. Batch norm never uses padded positions: training-mode statistics are computed over the
   valid (time, frequency) positions only (:class:`MaskedBatchNorm2d`, identical to
   ``nn.BatchNorm2d`` on the unpadded frames, running statistics included); eval mode uses
   the running statistics, a per-position operation.
4. Temporal average pooling is :func:`masked_mean` over valid steps.

A batch without any padding (fixed-length training crops, one utterance at a time) skips
all masking work (mask ``None`` inside the network): the same result for less work (about
20% less CPU time per training step at the demo size, measured on 16 utterances of 2.3 s).

Padding invariance, masked batch norm, the zero-initialised conditioning and the use of
the reference are unit-tested in ``tests/unit/test_models_resnet_cond.py``.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from ser_pipeline.models import SerModel, register_model
from ser_pipeline.models.masking import lengths_to_mask, mask_to_lengths, masked_mean

__all__ = [
    "MaskedBatchNorm2d",
    "ResBlock",
    "ResNetTrunk",
    "ResNetSER",
    "TwoChannelResNet",
    "EResNet",
    "align_reference",
    "strided_time_mask",
]


# ----------------------------------------------------------------------------- helpers
# Masks below are [B, T] bool (True = valid) or None, meaning "no padding in this batch"
# (fixed-length training crops, one utterance at a time): then no masking work is done.
def strided_time_mask(mask: torch.Tensor | None, stride: int, out_len: int) -> torch.Tensor | None:
    """Mask after a "same"-padded odd-kernel convolution with time stride ``stride``:
    ``ceil(len / stride)`` valid steps (the output length of the utterance alone)."""
    if mask is None or stride == 1:
        return mask
    lengths = mask_to_lengths(mask, require_prefix=False)
    new = torch.div(lengths + stride - 1, stride, rounding_mode="floor")
    return lengths_to_mask(new, out_len)


def _zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """[B, C, T, F] with padded time steps set to zero (Eq. 1 of Ma et al. 2018)."""
    if mask is None:
        return x
    return x * mask[:, None, :, None].to(x.dtype)


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over [B, C, T, F] whose statistics ignore padded time steps.

    Training mode: per-channel mean and (biased) variance over the valid (b, t, f)
    positions only; running statistics updated as ``nn.BatchNorm2d`` does (unbiased
    variance, ``momentum`` or cumulative average), so it equals ``nn.BatchNorm2d``
    applied to the unpadded frames. Eval mode: running statistics, a per-position map.
    With ``zero_padding`` the output is zero on padded steps, so that a convolution
    reading it sees exactly the zero padding the utterance gets alone; callers that mask
    later (a residual sum, a masked mean) skip it. ``mask=None``: no padding, the stock
    implementation. Padded values must be finite (the models zero their input first).
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,  # type: ignore[override]
                zero_padding: bool = True) -> torch.Tensor:
        if mask is None:
            return super().forward(x)
        if mask.shape != (x.shape[0], x.shape[2]):
            raise ValueError(f"mask {tuple(mask.shape)} does not match [B, T] of input {tuple(x.shape)}")
        if not self.training and self.track_running_stats:
            y = super().forward(x)
            return _zero_padding(y, mask) if zero_padding else y
        dtype = x.dtype
        x = x.float()  # statistics in float32 under autocast too, as F.batch_norm keeps them
        m = mask[:, None, :, None].to(x.dtype)
        n = int(mask.sum()) * x.shape[3]
        if n < 2:
            raise ValueError(
                f"batch norm in training mode needs more than 1 valid value per channel, got {n}"
            )
        # Two passes (mean, then centred squares): padding holds arbitrary conv outputs
        # and a one-pass E[x^2] - E[x]^2 loses precision on the log-spectrogram's offset.
        mean = (x * m).sum((0, 2, 3)) / n
        centred = (x - mean[None, :, None, None]) * m
        var = centred.pow(2).sum((0, 2, 3)) / n
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (
                    1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                )
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(var.detach() * (n / (n - 1)), alpha=factor)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        y = centred * scale[None, :, None, None]  # zero on padding already
        if self.affine:
            y = y + self.bias[None, :, None, None]
            if zero_padding:
                y = y * m
        return y.to(dtype)


def align_reference(
    ref: torch.Tensor, ref_mask: torch.Tensor, mask: torch.Tensor, rule: str = "cycle"
) -> torch.Tensor:
    """The reference [B, T_ref, F] brought to the utterance frames [B, T] (zero on padding).

    ``cycle``: frame t is reference frame ``t mod L_ref``; ``crop``: frame t is reference
    frame t while ``t < L_ref``, zero after. Only valid frames of either are ever read.
    """
    ref_len = mask_to_lengths(ref_mask)
    if bool((ref_len == 0).any()):
        raise ValueError("a reference utterance has no valid frame (ref_audio_mask all False)")
    T = mask.shape[1]
    t = torch.arange(T, device=ref.device)[None, :].expand(ref.shape[0], T)
    if rule == "cycle":
        idx = t % ref_len[:, None]
        valid = mask
    elif rule == "crop":
        idx = torch.minimum(t, (ref_len - 1)[:, None])
        valid = mask & (t < ref_len[:, None])
    else:
        raise ValueError(f"unknown reference alignment rule {rule!r}")
    out = torch.gather(ref, 1, idx[..., None].expand(-1, -1, ref.shape[2]))
    return out.masked_fill(~valid[..., None], 0.0)


# ----------------------------------------------------------------------------- blocks
class ResBlock(nn.Module):
    """Basic residual block (He et al. 2016), optionally conditioned (Fig. 1c).

    With ``cond_dim > 0`` each convolution's output gets ``Linear(cond)`` (zero-initialised)
    added, broadcast over time and frequency, before its batch norm.
    """

    def __init__(self, in_c: int, out_c: int, kernel: tuple[int, int], stride: tuple[int, int],
                 cond_dim: int = 0, momentum: float = 0.1):
        super().__init__()
        pad = (kernel[0] // 2, kernel[1] // 2)
        self.stride_t = stride[0]
        self.conv1 = nn.Conv2d(in_c, out_c, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = MaskedBatchNorm2d(out_c, momentum=momentum)
        self.conv2 = nn.Conv2d(out_c, out_c, kernel, padding=pad, bias=False)
        self.bn2 = MaskedBatchNorm2d(out_c, momentum=momentum)
        if in_c != out_c or tuple(stride) != (1, 1):
            self.proj = nn.Conv2d(in_c, out_c, 1, stride=stride, bias=False)
            self.proj_bn = MaskedBatchNorm2d(out_c, momentum=momentum)
        else:
            self.proj = None
        if cond_dim:
            self.cond1 = nn.Linear(cond_dim, out_c)
            self.cond2 = nn.Linear(cond_dim, out_c)
            for lin in (self.cond1, self.cond2):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        else:
            self.cond1 = self.cond2 = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cond: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B, C_in, T, F] (zero on padded steps) -> ([B, C_out, T', F'], mask [B, T'])."""
        if (cond is None) != (self.cond1 is None):
            raise ValueError("a conditional block needs a condition vector, a plain block takes none")
        h = self.conv1(x)
        new_mask = strided_time_mask(mask, self.stride_t, h.shape[2])
        if cond is not None:
            h = h + self.cond1(cond)[:, :, None, None]
        h = F.relu(self.bn1(h, new_mask))  # zero on padding: conv2 reads it
        h = self.conv2(h)
        if cond is not None:
            h = h + self.cond2(cond)[:, :, None, None]
        h = self.bn2(h, new_mask, zero_padding=False)
        short = x if self.proj is None else self.proj_bn(self.proj(x), new_mask, zero_padding=False)
        return _zero_padding(F.relu(h + short), new_mask), new_mask


class ResNetTrunk(nn.Module):
    """Residual blocks -> frequency-axis convolution -> temporal average pooling.

    [B, C_in, T, F] + mask [B, T] -> [B, freq_channels] (the pooled utterance vector).
    """

    def __init__(self, in_channels: int, n_freq: int, channels: list[int],
                 strides: list[tuple[int, int]], kernel: tuple[int, int], freq_channels: int,
                 input_bn: bool = True, cond_dim: int = 0, momentum: float = 0.1):
        super().__init__()
        self.input_bn = MaskedBatchNorm2d(in_channels, momentum=momentum) if input_bn else None
        self.blocks = nn.ModuleList()
        c, f = in_channels, n_freq
        for out_c, stride in zip(channels, strides):
            self.blocks.append(ResBlock(c, out_c, kernel, stride, cond_dim, momentum))
            c = out_c
            f = (f - 1) // stride[1] + 1  # odd kernel, padding (k - 1) / 2
        self.n_freq_out = f
        self.freq_conv = nn.Conv2d(c, freq_channels, (1, f), bias=False)
        self.freq_bn = MaskedBatchNorm2d(freq_channels, momentum=momentum)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor | None = None
                ) -> torch.Tensor:
        if bool(mask.all()):
            mask = None  # no padding anywhere: skip every masking step
        if mask is not None:  # masked_fill, not a product: padding may hold inf or NaN
            x = x.masked_fill(~mask[:, None, :, None], 0.0)
        if self.input_bn is not None:
            x = self.input_bn(x, mask)
        for block in self.blocks:
            x, mask = block(x, mask, cond)
        h = F.relu(self.freq_bn(self.freq_conv(x), mask, zero_padding=False))[..., 0]  # [B, C, T']
        if mask is None:
            return h.mean(-1)
        return masked_mean(h.transpose(1, 2), mask, dim=1)


# ----------------------------------------------------------------------------- models
def _int(v, lo: int = 1) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= lo


def _pair(v) -> tuple[int, int] | None:
    if _int(v):
        return int(v), int(v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_int(i) for i in v):
        return int(v[0]), int(v[1])
    return None


def _inputs(batch: dict, prefix: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    x = batch[f"{prefix}audio"]
    mask = batch.get(f"{prefix}audio_mask")
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    mask_to_lengths(mask)  # a mask with holes fails here instead of giving wrong outputs
    return x, mask


class _ResNetBase(SerModel):
    """Shared construction and head; subclasses say how the trunk gets its input."""

    streams = ("audio",)
    in_channels = 1

    @classmethod
    def default_hparams(cls) -> dict:
        return {
            "channels": [16, 16, 32, 32, 64, 64, 128, 128],
            "strides": [[1, 1], [1, 1], [2, 2], [1, 1], [2, 2], [1, 1], [2, 2], [1, 1]],
            "kernel_size": [3, 3],  # (time, freq), odd
            "freq_channels": 128,
            "fc_units": 128,
            "dropout": 0.3,
            "input_bn": True,
            "bn_momentum": 0.1,
        }

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        hp = self.hparams
        self.kernel = self._kernel()
        self.main_strides = self._blocks("channels", "strides")
        for key in ("freq_channels", "fc_units"):
            if not _int(hp[key]):
                raise self._bad(key, "must be a positive int")
        p = hp["dropout"]
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p < 1.0:
            raise self._bad("dropout", "must be a number in [0, 1)")
        if not isinstance(hp["input_bn"], bool):
            raise self._bad("input_bn", "must be true or false")
        mom = hp["bn_momentum"]
        if not isinstance(mom, (int, float)) or isinstance(mom, bool) or not 0.0 < mom <= 1.0:
            raise self._bad("bn_momentum", "must be a number in (0, 1]")
        self.trunk = ResNetTrunk(
            self.in_channels, self.input_dims["audio"], list(hp["channels"]), self.main_strides,
            self.kernel, hp["freq_channels"], hp["input_bn"], self._cond_dim(), float(mom),
        )
        self.head = nn.Sequential(
            nn.Dropout(float(p)),
            nn.Linear(hp["freq_channels"], hp["fc_units"]),
            nn.ReLU(),
            nn.Dropout(float(p)),
            nn.Linear(hp["fc_units"], self.n_classes),
        )

    def _cond_dim(self) -> int:
        return 0

    def _kernel(self) -> tuple[int, int]:
        k = _pair(self.hparams["kernel_size"])
        if k is None or k[0] % 2 == 0 or k[1] % 2 == 0:
            raise self._bad("kernel_size", "must be an odd int or an odd [time, freq] pair")
        return k

    def _blocks(self, ch_key: str, st_key: str) -> list[tuple[int, int]]:
        chans, strides = self.hparams[ch_key], self.hparams[st_key]
        if not isinstance(chans, (list, tuple)) or not chans or not all(_int(c) for c in chans):
            raise self._bad(ch_key, "must be a non-empty list of positive ints (one per block)")
        if not isinstance(strides, (list, tuple)) or len(strides) != len(chans):
            raise self._bad(st_key, f"must be a list with one [time, freq] stride per block ({len(chans)})")
        out = [_pair(s) for s in strides]
        if any(s is None for s in out):
            raise self._bad(st_key, "entries must be positive ints or [time, freq] pairs")
        return out  # type: ignore[return-value]

    def pooled(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.pooled(batch))

    def embed(self, batch: dict) -> torch.Tensor:
        """The temporally pooled frequency-convolution output, before the linear layers."""
        return self.pooled(batch)

    def _reference(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if "ref_audio" not in batch:
            raise ValueError(
                f"model '{self.name}' needs a reference utterance: batch['ref_audio'] and "
                "batch['ref_audio_mask'] are missing (the model declares needs={'reference'})"
            )
        return _inputs(batch, "ref_")


@register_model("resnet")
class ResNetSER(_ResNetBase):
    """The baseline ResNet of Triantafyllopoulos et al. (2021) (also ResNet-NORM); see the
    module docstring for every choice. Reads no reference."""

    def pooled(self, batch: dict) -> torch.Tensor:
        x, mask = _inputs(batch)
        return self.trunk(x.unsqueeze(1), mask)


@register_model("two_channel_resnet")
class TwoChannelResNet(_ResNetBase):
    """*TwoChannel*: the baseline with the neutral reference as a second input channel,
    aligned to the utterance by ``ref_align`` ("cycle" or "crop", module docstring)."""

    needs = frozenset({"reference"})
    in_channels = 2

    @classmethod
    def default_hparams(cls) -> dict:
        return {**super().default_hparams(), "ref_align": "cycle"}

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        if self.hparams["ref_align"] not in ("cycle", "crop"):
            raise self._bad("ref_align", "must be 'cycle' or 'crop'")

    def pooled(self, batch: dict) -> torch.Tensor:
        x, mask = _inputs(batch)
        ref, ref_mask = self._reference(batch)
        if ref.shape[0] != x.shape[0] or ref.shape[2] != x.shape[2]:
            raise ValueError(
                f"ref_audio {tuple(ref.shape)} does not match audio {tuple(x.shape)} in batch or bins"
            )
        ref = align_reference(ref, ref_mask, mask, self.hparams["ref_align"])
        return self.trunk(torch.stack([x, ref], dim=1), mask)


@register_model("eresnet")
class EResNet(_ResNetBase):
    """eResNet: the main ResNet with 8 conditional residual blocks, conditioned on the
    embedding of the neutral reference utterance computed by a 4-block ResNet sub-network
    (module docstring for every choice)."""

    needs = frozenset({"reference"})

    @classmethod
    def default_hparams(cls) -> dict:
        return {
            **super().default_hparams(),
            "emb_channels": [16, 32, 64, 128],
            "emb_strides": [[2, 2], [2, 2], [2, 2], [1, 1]],
            "emb_freq_channels": 128,
            "emb_dim": 128,
        }

    def _cond_dim(self) -> int:
        d = self.hparams["emb_dim"]
        if not _int(d):
            raise self._bad("emb_dim", "must be a positive int")
        return int(d)

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        hp = self.hparams
        emb_strides = self._blocks("emb_channels", "emb_strides")
        if not _int(hp["emb_freq_channels"]):
            raise self._bad("emb_freq_channels", "must be a positive int")
        self.embedder = ResNetTrunk(
            1, self.input_dims["audio"], list(hp["emb_channels"]), emb_strides, self.kernel,
            hp["emb_freq_channels"], hp["input_bn"], 0, float(hp["bn_momentum"]),
        )
        self.emb_out = nn.Linear(hp["emb_freq_channels"], hp["emb_dim"])

    def speaker_embedding(self, batch: dict) -> torch.Tensor:
        """The reference utterance's embedding [B, emb_dim] that conditions every block."""
        ref, ref_mask = self._reference(batch)
        if not bool(mask_to_lengths(ref_mask).all()):
            raise ValueError("a reference utterance has no valid frame (ref_audio_mask all False)")
        if ref.shape[2] != self.input_dims["audio"]:
            raise ValueError(
                f"ref_audio has {ref.shape[2]} bins, the model expects {self.input_dims['audio']}"
            )
        return self.emb_out(self.embedder(ref.unsqueeze(1), ref_mask))

    def pooled(self, batch: dict) -> torch.Tensor:
        x, mask = _inputs(batch)
        cond = self.speaker_embedding(batch)
        if cond.shape[0] != x.shape[0]:
            raise ValueError(f"{cond.shape[0]} reference utterances for {x.shape[0]} utterances")
        return self.trunk(x.unsqueeze(1), mask, cond)

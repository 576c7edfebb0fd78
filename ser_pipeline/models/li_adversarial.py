"""Li et al. (2020): speaker-invariant emotion representations, four training schemes.

One encoder (ENC) and emotion classifier (EC) from Table 1, shared by four arch names that
differ only in what is done with a speaker classifier (SC) on the encoder output:

==================  =====================================================================
``li_emotion_only`` ENC + EC, weighted emotion cross-entropy (the paper's "EC only").
``li_multitask``    ENC + EC + SC, both cross-entropies minimised through the shared ENC.
``li_dat``          as multi-task, with a gradient reversal layer between ENC and SC
                    (Ganin et al. 2016; Tu et al. 2019, the paper's ref. [20]).
``li_menan``        MEnAN: SC and ENC + EC trained in turn; ENC maximises the entropy of
                    SC's speaker posterior (Sec. 3.3, Eq. 1 and 5).
==================  =====================================================================

Input ``batch["audio"]`` [B, T, 43]: 40 log-Mel + log energy + F0 + NCCF per 10 ms frame
(:mod:`ser_pipeline.features.fbank_pitch`), ``batch["audio_mask"]`` [B, T] (valid frames
first). The encoder's 96-d output v = enc(x) is what :meth:`LiModel.embed` returns (the
t-SNE of Fig. 2 and :mod:`ser_pipeline.reporting.speaker_probe` look at it).

Table 1 fixes the layer sizes; everything below is what it leaves open, and what we chose.

* **Masks through the strided convolutions.** Both Conv1D layers have padding 0, so an
  utterance of L frames processed alone has ``floor((L - k) / s) + 1`` output steps: the
  steps whose receptive field lies *entirely* inside its L frames. We keep exactly those as
  valid in a padded batch (:func:`conv_lengths`). A step whose receptive field merely
  *starts* inside the valid frames would read padding, and would not exist unpadded. With
  k = 10, s = 2 then k = 5, s = 2 one output step covers 18 input frames, hop 4:
  L = 23, 24, 25 give 2 steps, 26 gives 3. Padded frames are zeroed before the first
  convolution (NaN or inf padding could otherwise reach the weight gradients through
  0 * x), although no valid output step reads them.
* **Utterances shorter than one receptive field** (< 18 frames, 180 ms) would have no
  output step. The paper never meets them (every input is cycle-repeated to 14 s, Sec. 5);
  we apply the same cycle-repeat mode inside the model, to the receptive field only: a
  valid part of L < 18 frames is repeated to 18 frames (``t % L``), alone or batched alike.
  An utterance with no valid frame at all is an error, not a zero vector.
* **GRU**: one layer, unidirectional, 32 units (Table 1's GRU(32, 32, 1) feeding a
  Linear(32, 32) fits one direction only). Padded steps come after a row's valid ones, so
  they never enter a valid step's state. Its per-step outputs go through Linear(32, 32) +
  PReLU and then the statistics pooling over valid steps only
  (:mod:`ser_pipeline.models.masking`), which leaves the padded steps out.
* **Statistics pooling** order [mean, std, max] as in Table 1. The std is the population
  std (divide by the number of valid steps, not n - 1), so one valid step gives std 0
  rather than NaN; it is computed as ``sqrt(var + 1e-5)`` so that the gradient stays
  finite at var = 0 (the shift is 0.003 at most, against typical stds of order 0.1-1).
* **PReLU**: one shared slope per layer (PyTorch's default, initial 0.25), as Table 1
  names no channel count.
* **No batch norm, no dropout by default.** The paper gives neither; batch norm would also
  mix padded statistics across a batch. ``dropout`` (default 0) optionally drops units of
  v before each classifier, never in :meth:`embed`.
* **Initialisation**: PyTorch defaults (Kaiming-uniform for Conv1D / Linear, uniform
  +-1/sqrt(32) for the GRU); the paper does not say.
* **Loss weighting.** Eq. 5 weights the emotion and speaker-entropy terms by lambda and
  1 - lambda with lambda = 0.5 (Table 1). The paper trains the baselines "under the same
  configuration", so the multi-task loss is lambda * CE_emo + (1 - lambda) * CE_spk and
  the DAT loss the same with the GRL in front of SC (``emotion_weight`` = lambda, default
  0.5: equal weights; with Adam only the ratio matters). EC-only uses CE_emo alone.
* **Per-utterance weights** (``batch["weight"]``, e.g. class balancing) apply to the
  emotion cross-entropy in every scheme, MEnAN included; speaker terms are plain means
  (Eq. 1 and 2 have no weights; the weights describe emotion classes).
* **Speakers outside the training set** (index -1: validation / test speakers, or anyone
  the core could not map) are left out of every speaker term (cross-entropy and entropy);
  a batch without any training speaker contributes no speaker loss, and MEnAN's speaker
  step is then skipped. Any other index outside [-1, n_speakers) is an error.
* **GRL schedule (DAT).** The reversal coefficient follows the DANN ramp
  alpha(p) = c * (2 / (1 + exp(-gamma * p)) - 1), p = training progress in [0, 1],
  c = ``grl_coefficient`` = 1, gamma = ``grl_gamma`` = 10 (Ganin et al.), so the encoder
  is not pushed around by a still-random speaker classifier early on; ``grl_schedule:
  constant`` uses alpha = c throughout. The forward value of the loss does not depend on
  alpha, only the encoder's gradient (-alpha times the multi-task one).
* **MEnAN** (Sec. 3.3). Each batch: first (1) the speaker step, Eq. 1 on the detached
  encoder output, only the ``speaker`` optimiser steps (Sec. 3.3.1 comes first in the
  paper, and the SC that step 2 must confuse is then the one that has just seen the
  batch); then (2) the encoder + emotion step on Eq. 5 with SC's parameters frozen
  (``requires_grad`` off during the step, so no gradient is even computed for them and
  none can leak into the next speaker step; the speaker optimiser's gradients are also
  cleared before every speaker step). The encoder output is computed once per batch and
  reused by both steps: step 1 does not change the encoder. We minimise
  lambda * CE_emo + (1 - lambda) * (log K - H), K = number of training speakers: Eq. 5
  plus the constant (1 - lambda) log K, so the same gradients, but a loss that is >= 0
  (the second term is the KL divergence of the speaker posterior from uniform) and whose
  relative drop the training core's convergence check can read. The entropy of a
  saturated softmax has a vanishing gradient: in a unit test, Adam at lr 1e-2 on the
  encoder overshot into such a region of a fixed, confident speaker classifier and the
  entropy fell to ~0 instead of rising; at the paper's lr 1e-3 it rose as intended.

Not here, because they are data handling (the training core's): the 14 s middle crop and
the cycle-repeat of shorter utterances to 14 s, speed perturbation (0.8-1.2), Adam with
polynomial decay, batch 16, 300 epochs, model selection on the validation speaker.
"""
from __future__ import annotations

import contextlib
import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from ser_pipeline.models import HparamError, SerModel, register_model
from ser_pipeline.models.masking import lengths_to_mask, mask_to_lengths, masked_max, masked_mean

__all__ = [
    "LiModel",
    "LiEmotionOnly",
    "LiMultiTask",
    "LiDAT",
    "LiMEnAN",
    "conv_lengths",
    "receptive_field",
    "cycle_repeat_to",
    "grad_reverse",
    "dann_ramp",
    "STD_EPS",
]

STD_EPS = 1e-5  # added to the variance before the square root (finite gradient at var = 0)


def conv_lengths(lengths: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Valid output steps of an unpadded Conv1D (padding 0): ``floor((L - k) / s) + 1``.

    Exactly the steps whose receptive field lies inside the valid input, i.e. the length
    the same utterance gives when processed alone. 0 where L < k.
    """
    n = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return n.clamp_min(0)


def receptive_field(kernels, strides) -> int:
    """Input frames one output step of a stack of padding-0 convolutions reads."""
    r, hop = 1, 1
    for k, s in zip(kernels, strides):
        r += (k - 1) * hop
        hop *= s
    return r


def cycle_repeat_to(x: torch.Tensor, mask: torch.Tensor, min_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the padding and cycle-repeat every valid part shorter than ``min_len`` frames.

    Row b of length L < min_len becomes frames ``t % L`` for t < min_len (the paper's cycle
    repeat mode, Sec. 5); longer rows are unchanged. Depends only on each row's own valid
    frames, so a row gives the same result alone or padded in any batch.
    """
    lengths = mask_to_lengths(mask)
    if bool((lengths == 0).any()):
        bad = [i for i, n in enumerate(lengths.tolist()) if n == 0]
        raise ValueError(f"utterance(s) at batch position(s) {bad} have no valid frame")
    if int(lengths.min()) >= min_len:
        return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask
    T = max(x.shape[1], min_len)
    t = torch.arange(T, device=x.device)
    idx = t.unsqueeze(0) % lengths.unsqueeze(-1)  # [B, T]; = t on every valid frame
    x = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    new_mask = lengths_to_mask(lengths.clamp_min(min_len), T)
    return x.masked_fill(~new_mask.unsqueeze(-1), 0.0), new_mask


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = float(alpha)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


def grad_reverse(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Identity forward, gradient times -alpha backward (Ganin et al. 2016)."""
    return _GradReverse.apply(x, alpha)


def dann_ramp(progress: float, gamma: float = 10.0) -> float:
    """2 / (1 + exp(-gamma p)) - 1: 0 at the start of training, about 1 at the end."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def _mlp(d_in: int, units: list[int], d_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for u in units:
        layers += [nn.Linear(d_in, u), nn.PReLU()]
        d_in = u
    layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


def _positive_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1


@contextlib.contextmanager
def _frozen(module: nn.Module):
    """Parameters of ``module`` get no gradient inside the block (gradients still flow
    through it to its input)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class LiModel(SerModel):
    """Shared ENC + EC (and, in subclasses that need speakers, SC) of Li et al. 2020.

    See the module docstring for every choice the paper leaves open.
    """

    streams = ("audio",)
    uses_speaker_classifier = False

    @classmethod
    def default_hparams(cls) -> dict:
        return {
            "conv_channels": 32,
            "kernel_sizes": [10, 5],
            "strides": [2, 2],
            "rnn_hidden": 32,
            "embed_units": 32,  # Linear after the GRU; the pooled embedding is 3x this
            "classifier_units": [32, 10],  # hidden layers of EC (and SC)
            "dropout": 0.0,  # on v before the classifiers (the paper has none)
        }

    def __init__(self, input_dims, n_classes, hparams=None, n_speakers: int | None = None):
        super().__init__(input_dims, n_classes, hparams)
        hp = self.hparams
        if not _positive_int(hp["conv_channels"]):
            raise self._bad("conv_channels", "must be a positive int")
        for key in ("kernel_sizes", "strides"):
            v = hp[key]
            if not isinstance(v, (list, tuple)) or not v or not all(_positive_int(i) for i in v):
                raise self._bad(key, "must be a non-empty list of positive ints")
        if len(hp["kernel_sizes"]) != len(hp["strides"]):
            raise self._bad("strides", f"needs one entry per kernel ({len(hp['kernel_sizes'])})")
        for key in ("rnn_hidden", "embed_units"):
            if not _positive_int(hp[key]):
                raise self._bad(key, "must be a positive int")
        cu = hp["classifier_units"]
        if not isinstance(cu, (list, tuple)) or not all(_positive_int(u) for u in cu):
            raise self._bad("classifier_units", "must be a list of positive ints")
        p = hp["dropout"]
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p < 1.0:
            raise self._bad("dropout", "must be a number in [0, 1)")
        if "emotion_weight" in hp:
            lam = hp["emotion_weight"]
            if not isinstance(lam, numbers.Real) or isinstance(lam, bool) or not 0.0 <= lam <= 1.0:
                raise self._bad("emotion_weight", "must be a number in [0, 1] (the paper's lambda)")

        self.kernels = [int(k) for k in hp["kernel_sizes"]]
        self.strides = [int(s) for s in hp["strides"]]
        self.min_frames = receptive_field(self.kernels, self.strides)
        convs: list[nn.Module] = []
        acts: list[nn.Module] = []
        c_in = self.input_dims["audio"]
        for k, s in zip(self.kernels, self.strides):
            convs.append(nn.Conv1d(c_in, hp["conv_channels"], kernel_size=k, stride=s, padding=0))
            acts.append(nn.PReLU())
            c_in = hp["conv_channels"]
        self.convs = nn.ModuleList(convs)
        self.conv_acts = nn.ModuleList(acts)
        self.rnn = nn.GRU(c_in, hp["rnn_hidden"], num_layers=1, batch_first=True)
        self.frame_proj = nn.Sequential(nn.Linear(hp["rnn_hidden"], hp["embed_units"]), nn.PReLU())
        self.embed_dim = 3 * hp["embed_units"]
        self.drop = nn.Dropout(float(p))
        self.emotion_classifier = _mlp(self.embed_dim, list(cu), self.n_classes)
        self.n_speakers = None
        if self.uses_speaker_classifier:
            if not _positive_int(n_speakers) or n_speakers < 2:
                raise self._bad_speakers(n_speakers)
            self.n_speakers = int(n_speakers)
            self.speaker_classifier = _mlp(self.embed_dim, list(cu), self.n_speakers)

    def _bad_speakers(self, n):
        return HparamError(f"model '{self.name}' needs n_speakers >= 2 (training speakers), got {n!r}")

    # ------------------------------------------------------------------ encoder

    def encode(self, batch: dict) -> torch.Tensor:
        """v = enc(x): [B, 96] (3 x embed_units), a function of each row's valid frames only."""
        x = batch["audio"]
        mask = batch.get("audio_mask")
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        x, mask = cycle_repeat_to(x, mask, self.min_frames)
        lengths = mask_to_lengths(mask)
        y = x.transpose(1, 2)  # [B, D, T]
        for conv, act, k, s in zip(self.convs, self.conv_acts, self.kernels, self.strides):
            y = act(conv(y))
            lengths = conv_lengths(lengths, k, s)
        y = y.transpose(1, 2)  # [B, T', C]
        T2 = y.shape[1]
        mask = lengths_to_mask(lengths, T2)
        # A forward-only GRU: steps past a row's length see only what came before them and are
        # left out by the masked statistics below, so the padded batch runs as it is (packing
        # would send it step by step through autograd on the CPU).
        h, _ = self.rnn(y)
        h = self.frame_proj(h)
        mean = masked_mean(h, mask)
        var = masked_mean((h - mean.unsqueeze(1)) ** 2, mask)
        std = torch.sqrt(var + STD_EPS)
        return torch.cat([mean, std, masked_max(h, mask)], dim=-1)

    def embed(self, batch: dict) -> torch.Tensor:
        return self.encode(batch)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.emotion_classifier(self.drop(self.encode(batch)))

    # ------------------------------------------------------------------ losses

    def emotion_loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Cross-entropy weighted per utterance by ``batch["weight"]`` (as the core's default)."""
        ce = F.cross_entropy(logits, batch["label"], reduction="none")
        w = batch.get("weight")
        return (ce * w).mean() if w is not None else ce.mean()

    def known_speakers(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(bool [B] rows with a training speaker, long [B] speaker index with -1 -> 0)."""
        if "speaker" not in batch:
            raise KeyError(f"model '{self.name}' needs batch['speaker'] (declared in needs)")
        spk = batch["speaker"].long()
        bad = (spk < -1) | (spk >= self.n_speakers)
        if bool(bad.any()):
            raise ValueError(
                f"model '{self.name}': speaker index {int(spk[bad][0])} outside [-1, {self.n_speakers}) "
                f"(n_speakers = {self.n_speakers} training speakers)"
            )
        known = spk >= 0
        return known, spk.clamp_min(0)

    def speaker_ce(self, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, int]:
        """Mean speaker cross-entropy over rows with a training speaker (0 if none), row count."""
        known, target = self.known_speakers(batch)
        n = int(known.sum())
        ce = F.cross_entropy(logits, target, reduction="none")
        # masked_fill, not indexing: keeps shapes static and a -1 row's (clamped) target out
        return ce.masked_fill(~known, 0.0).sum() / max(n, 1), n

    def speaker_entropy(self, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, int]:
        """Mean entropy (nats) of the speaker posterior over rows with a training speaker."""
        known, _ = self.known_speakers(batch)
        n = int(known.sum())
        logp = F.log_softmax(logits, dim=-1)
        h = -(logp.exp() * logp).sum(-1)
        return h.masked_fill(~known, 0.0).sum() / max(n, 1), n

    def speaker_accuracy(self, logits: torch.Tensor, batch: dict) -> float:
        known, target = self.known_speakers(batch)
        n = int(known.sum())
        if n == 0:
            return 0.0
        return float(((logits.argmax(-1) == target) & known).sum()) / n


@register_model("li_emotion_only")
class LiEmotionOnly(LiModel):
    """ENC + EC trained on the (weighted) emotion cross-entropy: the paper's "EC only"."""

    needs = frozenset()


class _JointSpeakerModel(LiModel):
    """Multi-task and DAT: one optimiser step on lambda * CE_emo + (1 - lambda) * CE_spk."""

    needs = frozenset({"speaker"})
    uses_speaker_classifier = True

    @classmethod
    def default_hparams(cls) -> dict:
        return {**super().default_hparams(), "emotion_weight": 0.5}

    def grl_alpha(self) -> float | None:
        return None  # no reversal (multi-task)

    def losses(self, batch: dict) -> dict:
        """The loss terms of one batch (tensors, except ``speaker_rows``)."""
        v = self.encode(batch)
        d = self.drop(v)
        emo = self.emotion_loss(self.emotion_classifier(d), batch)
        alpha = self.grl_alpha()
        spk_in = d if alpha is None else grad_reverse(d, alpha)
        spk_logits = self.speaker_classifier(spk_in)
        spk, n = self.speaker_ce(spk_logits, batch)
        lam = float(self.hparams["emotion_weight"])
        return {"loss": lam * emo + (1.0 - lam) * spk, "emotion_loss": emo, "speaker_loss": spk,
                "speaker_logits": spk_logits, "speaker_rows": n}

    def compute_objectives(self, batch: dict) -> torch.Tensor:
        return self.losses(batch)["loss"]

    def training_step(self, batch: dict, optimizers: dict, progress: float) -> dict[str, float]:
        self.set_progress(progress)
        opt = optimizers["main"]
        out = self.losses(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        logged = {
            "loss": float(out["loss"].detach()),
            "emotion_loss": float(out["emotion_loss"].detach()),
            "speaker_loss": float(out["speaker_loss"].detach()),
            "speaker_acc": self.speaker_accuracy(out["speaker_logits"].detach(), batch),
        }
        if self.grl_alpha() is not None:
            logged["grl_alpha"] = self.grl_alpha()
        return logged

    def set_progress(self, progress: float) -> None:
        self.progress = float(progress)


@register_model("li_multitask")
class LiMultiTask(_JointSpeakerModel):
    """Emotion and speaker classifiers both minimised through the shared encoder."""


@register_model("li_dat")
class LiDAT(_JointSpeakerModel):
    """Domain-adversarial training: SC learns speakers, the GRL makes ENC unlearn them."""

    @classmethod
    def default_hparams(cls) -> dict:
        return {**super().default_hparams(), "grl_schedule": "dann", "grl_coefficient": 1.0,
                "grl_gamma": 10.0}

    def __init__(self, input_dims, n_classes, hparams=None, n_speakers: int | None = None):
        super().__init__(input_dims, n_classes, hparams, n_speakers=n_speakers)
        hp = self.hparams
        if hp["grl_schedule"] not in ("dann", "constant"):
            raise self._bad("grl_schedule", "must be 'dann' or 'constant'")
        for key in ("grl_coefficient", "grl_gamma"):
            v = hp[key]
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not v > 0:
                raise self._bad(key, "must be a number > 0")
        self.progress = 1.0  # outside training_step (tests, notebooks): the full coefficient

    def grl_alpha(self) -> float:
        c = float(self.hparams["grl_coefficient"])
        if self.hparams["grl_schedule"] == "constant":
            return c
        return c * dann_ramp(self.progress, float(self.hparams["grl_gamma"]))


@register_model("li_menan")
class LiMEnAN(LiModel):
    """Max-Entropy Adversarial Network: SC and ENC + EC updated in turn on every batch.

    :meth:`training_step` = :meth:`speaker_step` then :meth:`encoder_step` (module
    docstring: order, freezing, the log K constant).
    """

    needs = frozenset({"speaker"})
    uses_speaker_classifier = True

    @classmethod
    def default_hparams(cls) -> dict:
        return {**super().default_hparams(), "emotion_weight": 0.5}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        spk = {id(p) for p in self.speaker_classifier.parameters()}
        return {
            "main": [p for p in self.parameters() if p.requires_grad and id(p) not in spk],
            "speaker": [p for p in self.speaker_classifier.parameters() if p.requires_grad],
        }

    def encoder_objective(self, batch: dict, v: torch.Tensor | None = None) -> dict:
        """Eq. 5 plus (1 - lambda) log K: lambda * CE_emo + (1 - lambda) * (log K - H)."""
        if v is None:
            v = self.encode(batch)
        d = self.drop(v)
        emo = self.emotion_loss(self.emotion_classifier(d), batch)
        ent, n = self.speaker_entropy(self.speaker_classifier(d), batch)
        lam = float(self.hparams["emotion_weight"])
        gap = (math.log(self.n_speakers) - ent) if n else ent * 0.0
        return {"loss": lam * emo + (1.0 - lam) * gap, "emotion_loss": emo, "speaker_entropy": ent,
                "speaker_rows": n}

    def compute_objectives(self, batch: dict) -> torch.Tensor:
        return self.encoder_objective(batch)["loss"]

    def speaker_step(self, batch: dict, optimizer, v: torch.Tensor | None = None) -> dict[str, float]:
        """Step (1), Sec. 3.3.1: SC on the speaker cross-entropy (Eq. 1) of the detached
        encoder output; only ``optimizer`` (the ``speaker`` group's) steps."""
        if v is None:
            with torch.no_grad():
                v = self.encode(batch)
        v = v.detach()
        logits = self.speaker_classifier(self.drop(v))
        loss, n = self.speaker_ce(logits, batch)
        optimizer.zero_grad(set_to_none=True)
        if n:
            loss.backward()
            optimizer.step()
        return {"speaker_loss": float(loss.detach()),
                "speaker_acc": self.speaker_accuracy(logits.detach(), batch)}

    def encoder_step(self, batch: dict, optimizer, v: torch.Tensor | None = None) -> dict[str, float]:
        """Step (2), Sec. 3.3.2: ENC + EC on Eq. 5 with SC frozen; only ``optimizer``
        (the ``main`` group's) steps, and SC's parameters get no gradient."""
        with _frozen(self.speaker_classifier):
            out = self.encoder_objective(batch, v)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
        return {"loss": float(out["loss"].detach()),
                "emotion_loss": float(out["emotion_loss"].detach()),
                "speaker_entropy": float(out["speaker_entropy"].detach())}

    def training_step(self, batch: dict, optimizers: dict, progress: float) -> dict[str, float]:
        v = self.encode(batch)  # one encoder pass; step 1 does not change the encoder
        spk = self.speaker_step(batch, optimizers["speaker"], v.detach())
        enc = self.encoder_step(batch, optimizers["main"], v)
        return {**enc, **spk}

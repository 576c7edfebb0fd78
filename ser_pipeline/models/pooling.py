"""Boigne et al. (2020) Fig. 1 heads: frame features in, utterance logits out.

The paper deliberately keeps these heads tiny (few-data regime: 125 examples per
class), so they are single linear classifiers on top of a time pooling, with at
most a per-frame MLP in front. Softmax lives in the loss; heads return logits.

Left open by the paper, decided here (applies to all four heads):

* Dropout rate. The paper says "dropout regularization for all models after each
  layer" but gives no rate; default 0.2, set per experiment in the config.
* Where dropout sits in heads without hidden layers: on the pooled utterance
  vector, right before the output layer (the only "layer" output there is).
* Utterance-level inputs (T=1, e.g. eGeMAPS) just pool over a single frame, so the
  same heads double as linear / MLP classifiers for functionals.
"""
from __future__ import annotations

import torch
from torch import nn

from ser_pipeline.models import SerModel, register_model
from ser_pipeline.models.dropout import FastDropout
from ser_pipeline.models.masking import masked_max, masked_mean, masked_softmax


def _inputs(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x = batch["audio"]
    mask = batch.get("audio_mask")
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return x, mask


class _PoolHead(SerModel):
    streams = ("audio",)

    @classmethod
    def default_hparams(cls) -> dict:
        return {"dropout": 0.2}

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        p = self.hparams["dropout"]
        if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise self._bad("dropout", "must be a number in [0, 1)")
        self.dropout = nn.Dropout(float(p))


@register_model("mean_pool")
class MeanPool(_PoolHead):
    """(a) Mean pooling over time -> dropout -> linear.

    Boigne et al. assume emotion is roughly constant within a (<= 5 s) utterance,
    so the time average is a sufficient summary; this is the paper's simplest
    head and the reference point for the other three.
    """

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        self.out = nn.Linear(self.input_dims["audio"], n_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        x, mask = _inputs(batch)
        return self.out(self.dropout(masked_mean(x, mask)))


@register_model("mean_max_pool")
class MeanMaxPool(_PoolHead):
    """(b) concat(masked mean, masked max) -> dropout -> linear.

    The max adds "was this feature ever high" evidence to the average, at the
    price of doubling the classifier's parameters, as the paper notes. The max
    ignores padding even when all valid values are negative.
    """

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        self.out = nn.Linear(2 * self.input_dims["audio"], n_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        x, mask = _inputs(batch)
        pooled = torch.cat([masked_mean(x, mask), masked_max(x, mask)], dim=-1)
        return self.out(self.dropout(pooled))


@register_model("attention_pool")
class AttentionPool(_PoolHead):
    """(c) Attention-weighted average -> dropout -> linear.

    The paper only says the weights come from "a simple attention mechanism based
    on logistic regression". Choices made here:

    * Score: one linear unit per frame, ``s_t = w.x_t + b`` (the logistic
      regression), weights shared over time.
    * Normalisation: softmax over the valid frames (``attention_norm="softmax"``,
      default), i.e. multinomial-logistic weights. Why: it is the attention
      pooling of Mirsamadi et al. 2017, the "Bi-LSTM with attention pooling"
      baseline Boigne compare against in Table 2; it is shift-invariant, so the
      bias cannot saturate it; and it can move continuously from mean pooling
      (w = 0) to near-max pooling. The alternative reading -- per-frame sigmoid
      weights divided by their sum -- is kept as ``attention_norm="sigmoid"``
      for comparison; it saturates (all weights near 1 collapse back to a mean,
      with vanishing gradients) which is why it is not the default.
    * Initialisation: w = 0, b = 0, so training starts from exactly the mean
      pooling head (the paper's point that attention "includes the mean pooling
      approach").
    """

    @classmethod
    def default_hparams(cls) -> dict:
        return {"dropout": 0.2, "attention_norm": "softmax"}

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        if self.hparams["attention_norm"] not in ("softmax", "sigmoid"):
            raise self._bad("attention_norm", "must be 'softmax' or 'sigmoid'")
        d = self.input_dims["audio"]
        self.score = nn.Linear(d, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)
        self.out = nn.Linear(d, n_classes)

    def attention_weights(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.score(x).squeeze(-1)  # [B, T]
        if self.hparams["attention_norm"] == "softmax":
            return masked_softmax(s, mask, dim=-1)
        g = torch.sigmoid(s).masked_fill(~mask, 0.0)
        return g / g.sum(-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)

    def forward(self, batch: dict) -> torch.Tensor:
        x, mask = _inputs(batch)
        w = self.attention_weights(x, mask)
        pooled = torch.einsum("bt,btd->bd", w, x.masked_fill(~mask.unsqueeze(-1), 0.0))
        return self.out(self.dropout(pooled))


@register_model("mlp_pool")
class MLPPool(_PoolHead):
    """(d) Per-frame MLP (weights shared over time) -> masked mean -> linear.

    Boigne's best head (Table 1, Fig. 2). The paper scales "the number of layers
    and units to match the model capacity" for LLD (34-dim) vs wav2vec (512-dim)
    inputs but does not give the numbers. Choices made here:

    * ReLU hidden layers, dropout after each hidden layer (the paper's "after
      each layer"), no extra dropout after the pooling.
    * ``layers`` / ``units`` are set per feature type by the experiment config;
      :attr:`FEATURE_PRESETS` holds our capacity-matched pair (about 200k
      weights each): wav2vec 512 -> 2 x 256 (the default_hparams), LLD 34 ->
      3 x 320, i.e. the low-dimensional LLDs get a deeper and relatively much
      wider MLP to reach the same capacity.
    * ``layers = 0`` degenerates to mean pooling plus a linear layer.
    """

    FEATURE_PRESETS = {
        "wav2vec": {"layers": 2, "units": 256},
        "lld": {"layers": 3, "units": 320},
    }

    @classmethod
    def default_hparams(cls) -> dict:
        return {"dropout": 0.2, **cls.FEATURE_PRESETS["wav2vec"]}

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        n_layers, units = self.hparams["layers"], self.hparams["units"]
        if not isinstance(n_layers, int) or n_layers < 0:
            raise self._bad("layers", "must be an int >= 0")
        if not isinstance(units, int) or units < 1:
            raise self._bad("units", "must be an int >= 1")
        blocks: list[nn.Module] = []
        d = self.input_dims["audio"]
        for _ in range(n_layers):
            blocks += [nn.Linear(d, units), nn.ReLU(), FastDropout(float(self.hparams["dropout"]))]
            d = units
        self.mlp = nn.Sequential(*blocks)
        self.out = nn.Linear(d, n_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        x, mask = _inputs(batch)
        h = self.mlp(x)  # frame-wise; padding rows are removed by the masked mean
        return self.out(masked_mean(h, mask))

"""Boigne et al.'s bimodal wav2vec + BERT model (``bimodal_align``), after Xu et al. 2019."""
from __future__ import annotations

import math

import torch
from torch import nn

from ser_pipeline.models import SerModel, register_model
from ser_pipeline.models.birnn import bidirectional
from ser_pipeline.models.masking import (
    mask_to_lengths,
    masked_max,
    masked_mean,
    masked_softmax,
)


class BiRNNEncoder(nn.Module):
    """Bidirectional RNN returning every step, zero on padding (padding never enters it)."""

    def __init__(self, d_in: int, hidden: int, layers: int, rnn_type: str, dropout: float):
        super().__init__()
        cls = nn.LSTM if rnn_type == "lstm" else nn.GRU
        self.rnn = cls(
            d_in, hidden, num_layers=layers, batch_first=True, bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out_dim = 2 * hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return bidirectional(self.rnn, x, mask_to_lengths(mask))


class AlignmentAttention(nn.Module):
    """For each text token, a distribution over audio frames and the aligned vector.

    additive: e_ij = v . tanh(W_t t_i + W_a a_j + b), aligned_i = sum_j alpha_ij a_j
    dot:      e_ij = (Q t_i) . (K a_j) / sqrt(d),     aligned_i = sum_j alpha_ij a_j
    multihead: scaled dot-product with ``heads`` heads over projected values and an
              output projection (the form in the authors' DELTA release).
    Audio padding gets weight exactly 0 through :func:`masked_softmax`.
    """

    def __init__(self, kind: str, d_text: int, d_audio: int, d_att: int, heads: int):
        super().__init__()
        self.kind = kind
        self.d_att = d_att
        if kind == "additive":
            self.w_t = nn.Linear(d_text, d_att, bias=True)
            self.w_a = nn.Linear(d_audio, d_att, bias=False)
            self.v = nn.Linear(d_att, 1, bias=False)
            self.out_dim = d_audio
        elif kind == "dot":
            self.q = nn.Linear(d_text, d_att, bias=False)
            self.k = nn.Linear(d_audio, d_att, bias=False)
            self.out_dim = d_audio
        else:  # multihead
            self.heads = heads
            self.q = nn.Linear(d_text, d_att)
            self.k = nn.Linear(d_audio, d_att)
            self.v = nn.Linear(d_audio, d_att)
            self.o = nn.Linear(d_att, d_att)
            self.out_dim = d_att

    def forward(self, t: torch.Tensor, a: torch.Tensor, a_mask: torch.Tensor):
        """t [B, Tt, Dt], a [B, Ta, Da], a_mask [B, Ta] -> (aligned [B, Tt, out], weights)."""
        if self.kind == "additive":
            e = self.v(torch.tanh(self.w_t(t).unsqueeze(2) + self.w_a(a).unsqueeze(1))).squeeze(-1)
            w = masked_softmax(e, a_mask.unsqueeze(1), dim=-1)  # [B, Tt, Ta]
            return torch.bmm(w, a), w
        if self.kind == "dot":
            e = torch.bmm(self.q(t), self.k(a).transpose(1, 2)) / math.sqrt(self.d_att)
            w = masked_softmax(e, a_mask.unsqueeze(1), dim=-1)
            return torch.bmm(w, a), w
        B, Tt, _ = t.shape
        Ta = a.shape[1]
        h, dh = self.heads, self.d_att // self.heads
        q = self.q(t).view(B, Tt, h, dh).transpose(1, 2)  # [B, h, Tt, dh]
        k = self.k(a).view(B, Ta, h, dh).transpose(1, 2)
        v = self.v(a).view(B, Ta, h, dh).transpose(1, 2)
        e = q @ k.transpose(-1, -2) / math.sqrt(dh)  # [B, h, Tt, Ta]
        w = masked_softmax(e, a_mask[:, None, None, :], dim=-1)
        out = (w @ v).transpose(1, 2).reshape(B, Tt, self.d_att)
        return self.o(out), w


@register_model("bimodal_align")
class BimodalAlign(SerModel):
    """Audio-text alignment network of Xu et al. 2019 as used by Boigne et al. 2020.

    Boigne "use the same model as [Xu et al.]" with wav2vec frames in place of the
    34 LLDs and BERT (base, second-to-last layer) sub-word embeddings in place of
    GloVe word vectors. Pipeline: BiRNN over audio frames; BiRNN over text tokens;
    for each token an attention over the (masked) audio states gives an aligned
    audio vector; [token state ; aligned audio] is fused by a further BiRNN over
    the token sequence; masked pooling over tokens; dropout; linear.

    What the papers leave open, and our choices:

    * Boigne give no sizes, dropout rate, attention form or pooling at all.
    * Xu et al.'s paper text is not in our library; what we could check is the
      authors' public release (didi/delta: ``AlignClassModel`` with
      ``multimodal-align-emotion.yml``). It uses BiGRUs of 100 units per
      direction, 8-head scaled dot-product attention with the text states as
      queries over the speech states, the concatenation [aligned ; text], a
      fusion BiGRU followed by attention pooling, dropout 0.5 -- and it does not
      mask speech padding in the alignment (we always do).
    * Cell: LSTM (``rnn_type``), since Boigne's Table 2 names the model
      "Bi-LSTM with attention alignment"; GRU is selectable.
    * Sizes: 128 units per direction for the audio, text and fusion BiRNNs,
      one layer each.
    * Attention (``attention``): default "additive" (Bahdanau), one alignment
      distribution per token over the audio frames, which is the interpretable
      token-to-frame alignment the method is named after; "dot" (scaled,
      projected) and "multihead" (the release's form, ``attention_heads``
      heads) are selectable. Memory of "additive" grows as
      B x T_text x T_audio x ``attention_dim``.
    * Fusion (``fusion``): "rnn" (the further BiRNN) by default; "none" pools the
      concatenated sequence directly.
    * Pooling over tokens (``pooling``): "max" by default; "mean", "mean_max" and
      "attention" (tanh-projection scoring, as the release's HAN pooling) are
      selectable. Padding tokens never count.
    * Dropout 0.5 (the release's rate) on the outputs of the audio and text
      encoders and on the pooled vector before the output layer.
    * Sub-word tokens are used as they come from the text extractor (whether
      [CLS]/[SEP] are included is that extractor's decision; they are just tokens
      here). Utterances need at least one audio frame and one token.
    """

    streams = ("audio", "text")

    @classmethod
    def default_hparams(cls) -> dict:
        return {
            "rnn_type": "lstm",
            "audio_hidden": 128,
            "audio_layers": 1,
            "text_hidden": 128,
            "text_layers": 1,
            "attention": "additive",
            "attention_dim": 128,
            "attention_heads": 8,
            "fusion": "rnn",
            "fusion_hidden": 128,
            "pooling": "max",
            "dropout": 0.5,
        }

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        hp = self.hparams
        if hp["rnn_type"] not in ("lstm", "gru"):
            raise self._bad("rnn_type", "must be 'lstm' or 'gru'")
        for key in ("audio_hidden", "audio_layers", "text_hidden", "text_layers",
                    "attention_dim", "attention_heads", "fusion_hidden"):
            if not isinstance(hp[key], int) or isinstance(hp[key], bool) or hp[key] < 1:
                raise self._bad(key, "must be an int >= 1")
        if hp["attention"] not in ("additive", "dot", "multihead"):
            raise self._bad("attention", "must be 'additive', 'dot' or 'multihead'")
        if hp["attention"] == "multihead" and hp["attention_dim"] % hp["attention_heads"]:
            raise self._bad("attention_dim", "must be divisible by attention_heads")
        if hp["fusion"] not in ("rnn", "none"):
            raise self._bad("fusion", "must be 'rnn' or 'none'")
        if hp["pooling"] not in ("max", "mean", "mean_max", "attention"):
            raise self._bad("pooling", "must be 'max', 'mean', 'mean_max' or 'attention'")
        p = hp["dropout"]
        if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise self._bad("dropout", "must be a number in [0, 1)")
        p = float(p)

        self.audio_enc = BiRNNEncoder(self.input_dims["audio"], hp["audio_hidden"],
                                      hp["audio_layers"], hp["rnn_type"], p)
        self.text_enc = BiRNNEncoder(self.input_dims["text"], hp["text_hidden"],
                                     hp["text_layers"], hp["rnn_type"], p)
        self.align = AlignmentAttention(hp["attention"], self.text_enc.out_dim,
                                        self.audio_enc.out_dim, hp["attention_dim"],
                                        hp["attention_heads"])
        d = self.text_enc.out_dim + self.align.out_dim
        self.fusion = None
        if hp["fusion"] == "rnn":
            self.fusion = BiRNNEncoder(d, hp["fusion_hidden"], 1, hp["rnn_type"], p)
            d = self.fusion.out_dim
        if hp["pooling"] == "attention":
            self.pool_proj = nn.Linear(d, hp["attention_dim"])
            self.pool_score = nn.Linear(hp["attention_dim"], 1, bias=False)
        self.dropout = nn.Dropout(p)
        self.out = nn.Linear(2 * d if hp["pooling"] == "mean_max" else d, n_classes)

    @staticmethod
    def _stream(batch: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch[name]
        mask = batch.get(f"{name}_mask")
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return x, mask

    def forward(self, batch: dict, return_alignment: bool = False):
        a, a_mask = self._stream(batch, "audio")
        t, t_mask = self._stream(batch, "text")
        ha = self.dropout(self.audio_enc(a, a_mask))
        ht = self.dropout(self.text_enc(t, t_mask))
        aligned, weights = self.align(ht, ha, a_mask)
        fused = torch.cat([ht, aligned], dim=-1)
        if self.fusion is not None:
            fused = self.fusion(fused, t_mask)
        pooling = self.hparams["pooling"]
        if pooling == "max":
            pooled = masked_max(fused, t_mask)
        elif pooling == "mean":
            pooled = masked_mean(fused, t_mask)
        elif pooling == "mean_max":
            pooled = torch.cat([masked_mean(fused, t_mask), masked_max(fused, t_mask)], -1)
        else:
            s = self.pool_score(torch.tanh(self.pool_proj(fused))).squeeze(-1)
            w = masked_softmax(s, t_mask, dim=-1)
            pooled = torch.einsum("bt,btd->bd", w, fused.masked_fill(~t_mask.unsqueeze(-1), 0.0))
        logits = self.out(self.dropout(pooled))
        return (logits, weights) if return_alignment else logits

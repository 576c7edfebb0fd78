"""Xu et al. / Boigne et al. bimodal alignment model."""
import pytest
import torch
import torch.nn.functional as F

from ser_pipeline.models import build_model
from ser_pipeline.models.masking import lengths_to_mask

torch.set_num_threads(1)

DA, DT = 10, 12
SMALL = {"audio_hidden": 8, "text_hidden": 8, "fusion_hidden": 8, "attention_dim": 8,
         "attention_heads": 2}


def make_batch(a_lengths, t_lengths, seed=0, pad_value=0.0):
    g = torch.Generator().manual_seed(seed)
    batch = {}
    for name, lengths, d in (("audio", a_lengths, DA), ("text", t_lengths, DT)):
        T = max(lengths)
        x = torch.randn(len(lengths), T, d, generator=g)
        mask = lengths_to_mask(torch.tensor(lengths), T)
        batch[name] = torch.where(mask.unsqueeze(-1), x, pad_value * torch.randn(x.shape, generator=g))
        batch[f"{name}_mask"] = mask
    return batch


def first_alone(batch, na, nt):
    return {"audio": batch["audio"][:1, :na], "audio_mask": batch["audio_mask"][:1, :na],
            "text": batch["text"][:1, :nt], "text_mask": batch["text_mask"][:1, :nt]}


def test_forward_shape_defaults():
    m = build_model("bimodal_align", {"audio": 512, "text": 768}, 4, {})
    g = torch.Generator().manual_seed(0)
    b = {"audio": torch.randn(2, 50, 512, generator=g), "audio_mask": lengths_to_mask(torch.tensor([50, 20]), 50),
         "text": torch.randn(2, 9, 768, generator=g), "text_mask": lengths_to_mask(torch.tensor([9, 4]), 9)}
    assert m(b).shape == (2, 4)


@pytest.mark.parametrize("attention", ["additive", "dot", "multihead"])
@pytest.mark.parametrize("pooling,fusion", [("max", "rnn"), ("mean", "rnn"), ("mean_max", "none"),
                                            ("attention", "rnn")])
def test_padding_invariance(attention, pooling, fusion):
    torch.manual_seed(0)
    hp = {**SMALL, "attention": attention, "pooling": pooling, "fusion": fusion}
    m = build_model("bimodal_align", {"audio": DA, "text": DT}, 4, hp).eval()
    # the first utterance is shorter in BOTH streams than its batch-mate
    b = make_batch([11, 37], [4, 9], pad_value=25.0)
    with torch.no_grad():
        assert torch.allclose(m(first_alone(b, 11, 4))[0], m(b)[0], atol=1e-5)


def test_alignment_weights_ignore_audio_padding():
    m = build_model("bimodal_align", {"audio": DA, "text": DT}, 4, SMALL).eval()
    b = make_batch([6, 20], [3, 5])
    with torch.no_grad():
        _, w = m(b, return_alignment=True)
    assert w.shape == (2, 5, 20)
    assert torch.all(w[0, :, 6:] == 0)
    assert torch.allclose(w[0, :3].sum(-1), torch.ones(3))


def test_bad_hparams():
    with pytest.raises(ValueError, match="attention"):
        build_model("bimodal_align", {"audio": DA, "text": DT}, 4, {"attention": "luong"})
    with pytest.raises(ValueError, match="attention_dim"):
        build_model("bimodal_align", {"audio": DA, "text": DT}, 4,
                    {"attention": "multihead", "attention_dim": 10, "attention_heads": 4})


def test_overfits_eight_examples():
    torch.manual_seed(0)
    labels = torch.arange(8) % 4
    b = make_batch([8, 15, 5, 20, 11, 7, 13, 9], [3, 5, 2, 6, 4, 3, 5, 4], seed=1)
    g = torch.Generator().manual_seed(2)
    ca, ct = torch.randn(4, DA, generator=g), torch.randn(4, DT, generator=g)
    for key, c in (("audio", ca), ("text", ct)):
        b[key] = (0.5 * b[key] + 2.0 * c[labels].unsqueeze(1)) * b[f"{key}_mask"].unsqueeze(-1)
    m = build_model("bimodal_align", {"audio": DA, "text": DT}, 4, {**SMALL, "dropout": 0.0})
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(m(b), labels).backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        assert (m(b).argmax(-1) == labels).all()

"""Registry, masking helpers and the Boigne et al. pooling heads."""
import pytest
import torch

from ser_pipeline.errors import ConfigError
from ser_pipeline.models import arch_modules, build_model, model_class
from ser_pipeline.models.dropout import FastDropout
from ser_pipeline.models.masking import (
    lengths_to_mask,
    mask_to_lengths,
    masked_max,
    masked_mean,
    masked_softmax,
)

torch.set_num_threads(1)

HEADS = ["mean_pool", "mean_max_pool", "attention_pool", "mlp_pool"]
D = 12


def make_batch(lengths, dim=D, seed=0, pad_value=None):
    """Batch padded to max(lengths); padding holds ``pad_value`` noise if given."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    x = torch.randn(len(lengths), T, dim, generator=g)
    mask = lengths_to_mask(torch.tensor(lengths), T)
    fill = torch.zeros_like(x) if pad_value is None else pad_value * torch.randn(x.shape, generator=g)
    x = torch.where(mask.unsqueeze(-1), x, fill)
    return {"audio": x, "audio_mask": mask}


# --- registry --------------------------------------------------------------


def test_registry_names():
    assert {"mean_pool", "mean_max_pool", "attention_pool", "mlp_pool", "ma_crnn",
            "bimodal_align"} <= set(arch_modules())


NEURAL = [n for n in sorted(arch_modules()) if model_class(n).kind == "neural"]


@pytest.mark.parametrize("name", NEURAL)
def test_default_hparams_complete_and_fresh(name):
    cls = model_class(name)
    d = cls.default_hparams()
    assert isinstance(d, dict) and d
    d["dropout"] = "mutated"
    assert cls.default_hparams()["dropout"] != "mutated"
    assert cls.streams in (("audio",), ("audio", "text"))


@pytest.mark.parametrize("name", sorted(arch_modules()))
def test_unknown_hparam_names_the_key(name):
    dims = {s: 16 for s in model_class(name).streams}
    with pytest.raises(ValueError, match="no_such_knob"):
        build_model(name, dims, 4, {"no_such_knob": 1})
    # also a ConfigError, so the CLI prints it cleanly
    with pytest.raises(ConfigError):
        build_model(name, dims, 4, {"no_such_knob": 1})


def test_wrong_streams_and_unknown_model():
    with pytest.raises(ValueError, match="text"):
        build_model("bimodal_align", {"audio": 8}, 4, {})
    with pytest.raises(ValueError, match="text"):
        build_model("mean_pool", {"audio": 8, "text": 8}, 4, {})
    with pytest.raises(ValueError, match="nope"):
        build_model("nope", {"audio": 8}, 4, {})


def test_bad_hparam_value():
    with pytest.raises(ValueError, match="attention_norm"):
        build_model("attention_pool", {"audio": 8}, 4, {"attention_norm": "relu"})
    with pytest.raises(ValueError, match="dropout"):
        build_model("mean_pool", {"audio": 8}, 4, {"dropout": 1.5})


# --- masking helpers -------------------------------------------------------


def test_masked_mean_max_ignore_padding():
    x = torch.tensor([[[-3.0], [-1.0], [100.0]], [[2.0], [4.0], [6.0]]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert torch.allclose(masked_mean(x, mask), torch.tensor([[-2.0], [4.0]]))
    # padding (100, or a 0 after zero-padding) never wins even if valid values are negative
    assert torch.allclose(masked_max(x, mask), torch.tensor([[-1.0], [6.0]]))
    x0 = x.clone()
    x0[0, 2] = 0.0
    assert masked_max(x0, mask)[0, 0] == -1.0


def test_masked_helpers_empty_row_is_zero_not_nan():
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[False] * 4, [True, False, False, False]])
    assert torch.equal(masked_mean(x, mask)[0], torch.zeros(3))
    assert torch.equal(masked_max(x, mask)[0], torch.zeros(3))
    w = masked_softmax(torch.randn(2, 4), mask)
    assert torch.equal(w[0], torch.zeros(4))
    assert torch.allclose(w[1], torch.tensor([1.0, 0, 0, 0]))


def test_masked_softmax_broadcast_and_sum():
    s = torch.randn(2, 5, 7)
    m = lengths_to_mask(torch.tensor([7, 3]), 7).unsqueeze(1)
    w = masked_softmax(s, m)
    assert torch.allclose(w.sum(-1), torch.ones(2, 5))
    assert torch.all(w[1, :, 3:] == 0)
    assert torch.allclose(w[1, :, :3], torch.softmax(s[1, :, :3], -1))


def test_mask_to_lengths_rejects_holes():
    assert mask_to_lengths(lengths_to_mask(torch.tensor([3, 1]), 4)).tolist() == [3, 1]
    with pytest.raises(ValueError, match="prefix"):
        mask_to_lengths(torch.tensor([[True, False, True]]))


# --- heads -----------------------------------------------------------------


@pytest.mark.parametrize("name", HEADS)
def test_forward_shape(name):
    m = build_model(name, {"audio": D}, 4, {})
    assert m(make_batch([9, 4, 1])).shape == (3, 4)
    # utterance-level features come as T = 1
    assert m(make_batch([1, 1])).shape == (2, 4)


@pytest.mark.parametrize("name", HEADS)
def test_padding_invariance(name):
    torch.manual_seed(0)
    m = build_model(name, {"audio": D}, 4, {}).eval()
    if name == "attention_pool":  # leave the mean-pooling init so weights matter
        torch.nn.init.normal_(m.score.weight)
    batch = make_batch([7, 31], pad_value=50.0)  # padding filled with large noise
    alone = {"audio": batch["audio"][:1, :7], "audio_mask": batch["audio_mask"][:1, :7]}
    with torch.no_grad():
        assert torch.allclose(m(alone)[0], m(batch)[0], atol=1e-5)


def test_mean_pool_is_mean_then_linear():
    m = build_model("mean_pool", {"audio": D}, 3, {}).eval()
    b = make_batch([5, 2])
    expected = m.out(b["audio"][1, :2].mean(0))
    assert torch.allclose(m(b)[1], expected, atol=1e-6)


def test_attention_pool_starts_as_mean_pool_and_sigmoid_variant():
    b = make_batch([6, 3])
    m = build_model("attention_pool", {"audio": D}, 3, {}).eval()
    w = m.attention_weights(b["audio"], b["audio_mask"])
    assert torch.allclose(w[1], torch.tensor([1 / 3] * 3 + [0.0] * 3))
    s = build_model("attention_pool", {"audio": D}, 3, {"attention_norm": "sigmoid"}).eval()
    torch.nn.init.normal_(s.score.weight)
    w = s.attention_weights(b["audio"], b["audio_mask"])
    assert torch.allclose(w.sum(-1), torch.ones(2)) and torch.all(w[1, 3:] == 0)


def test_mlp_pool_layers_units_and_presets():
    m = build_model("mlp_pool", {"audio": 34}, 4, {"layers": 3, "units": 320})
    linears = [l for l in m.mlp if isinstance(l, torch.nn.Linear)]
    assert [l.out_features for l in linears] == [320, 320, 320]
    assert sum(isinstance(l, FastDropout) for l in m.mlp) == 3
    n = lambda mod: sum(p.numel() for p in mod.parameters())
    from ser_pipeline.models.pooling import MLPPool
    lld = build_model("mlp_pool", {"audio": 34}, 4, MLPPool.FEATURE_PRESETS["lld"])
    w2v = build_model("mlp_pool", {"audio": 512}, 4, MLPPool.FEATURE_PRESETS["wav2vec"])
    assert 0.8 < n(lld) / n(w2v) < 1.25  # capacity matched across feature types
    assert build_model("mlp_pool", {"audio": 8}, 4, {"layers": 0}).out.in_features == 8


def _overfit(model, batch, labels, steps=60, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return (model(batch).argmax(-1) == labels).float().mean().item()


@pytest.mark.parametrize("name", HEADS)
def test_overfits_eight_examples(name):
    torch.manual_seed(0)
    labels = torch.arange(8) % 4
    b = make_batch([5, 9, 3, 12, 7, 4, 10, 6], seed=1)
    centers = 2.0 * torch.randn(4, D, generator=torch.Generator().manual_seed(2))
    b["audio"] = (b["audio"] * 0.5 + centers[labels].unsqueeze(1)) * b["audio_mask"].unsqueeze(-1)
    m = build_model(name, {"audio": D}, 4, {"dropout": 0.0})
    assert _overfit(m, b, labels) == 1.0

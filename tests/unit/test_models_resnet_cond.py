"""Triantafyllopoulos et al. 2021: ResNet, TwoChannel and eResNet (ser_pipeline.models.resnet_cond)."""
import pytest
import torch
from torch import nn

from ser_pipeline.models import build_model
from ser_pipeline.models.masking import lengths_to_mask
from ser_pipeline.models.resnet_cond import MaskedBatchNorm2d, align_reference, strided_time_mask

torch.set_num_threads(1)

NF = 12  # frequency bins of the debug network (the real input has 201)
# 8 main blocks as in the paper, tiny widths; four time strides of 2 (16x) so odd lengths
# hit stride borders at every level, and frequency strides too.
SMALL = {
    "channels": [4, 4, 6, 6, 8, 8, 8, 8],
    "strides": [[2, 1], [1, 1], [2, 2], [1, 1], [2, 2], [1, 1], [2, 1], [1, 1]],
    "freq_channels": 8,
    "fc_units": 8,
}
SMALL_EMB = {**SMALL, "emb_channels": [4, 4, 6, 6], "emb_strides": [[2, 2], [1, 1], [2, 2], [2, 1]],
             "emb_freq_channels": 6, "emb_dim": 6}
HP = {"resnet": SMALL, "two_channel_resnet": SMALL, "eresnet": SMALL_EMB}
ARCHS = list(HP)


def padded(lengths, seed=0, nf=NF, pad_value=50.0):
    """Random frames with loud garbage in the padding."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    x = torch.randn(len(lengths), T, nf, generator=g) - 4.0
    mask = lengths_to_mask(torch.tensor(lengths), T)
    x = torch.where(mask.unsqueeze(-1), x, pad_value + torch.randn(x.shape, generator=g))
    return x, mask


def make_batch(lengths, ref_lengths=None, seed=0):
    x, mask = padded(lengths, seed)
    b = {"audio": x, "audio_mask": mask}
    if ref_lengths is not None:
        r, rmask = padded(ref_lengths, seed + 100)
        b.update(ref_audio=r, ref_audio_mask=rmask)
    return b


def row(batch, i, n=None, n_ref=None):
    """Item i of a batch, unpadded (its own valid frames only)."""
    out = {"audio": batch["audio"][i:i + 1, :n], "audio_mask": batch["audio_mask"][i:i + 1, :n]}
    if "ref_audio" in batch:
        out["ref_audio"] = batch["ref_audio"][i:i + 1, :n_ref]
        out["ref_audio_mask"] = batch["ref_audio_mask"][i:i + 1, :n_ref]
    return out


def randomise_conditioning(model, seed=3):
    """Non-zero conditioning weights (they start at zero) so the reference matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".cond" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def trained_model(arch, seed=0):
    """A model in eval mode whose batch norms hold non-trivial running statistics."""
    torch.manual_seed(seed)
    # momentum 1: the running statistics are those of the last batch, not mostly the
    # (0, 1) initial values, so eval-mode activations have a realistic scale
    m = build_model(arch, {"audio": NF}, 4, {**HP[arch], "bn_momentum": 1.0})
    if arch == "eresnet":
        randomise_conditioning(m)
    m.train()
    with torch.no_grad():
        for s in range(3):
            m(make_batch([23, 40, 17], [19, 33, 8], seed=10 + s))
    return m.eval()


# ----------------------------------------------------------------------------- basics
def test_default_paper_scale_shapes():
    for arch in ARCHS:
        m = build_model(arch, {"audio": 201}, 4, {}).eval()
        assert len(m.trunk.blocks) == 8 and m.trunk.n_freq_out == 26  # 201 -> 101 -> 51 -> 26
        b = make_batch([37, 12], [20, 41]) if arch != "resnet" else make_batch([37, 12])
        b = {k: (torch.randn(*v.shape[:2], 201) if v.dtype != torch.bool else v) for k, v in b.items()}
        with torch.no_grad():
            assert m(b).shape == (2, 4)
            assert m.embed(b).shape == (2, 128)
    e = build_model("eresnet", {"audio": 201}, 4, {})
    assert len(e.embedder.blocks) == 4 and e.trunk.blocks[0].cond1 is not None
    assert build_model("resnet", {"audio": 201}, 4, {}).trunk.blocks[0].cond1 is None


def test_needs():
    assert build_model("resnet", {"audio": NF}, 4, SMALL).needs == frozenset()
    assert build_model("two_channel_resnet", {"audio": NF}, 4, SMALL).needs == {"reference"}
    assert build_model("eresnet", {"audio": NF}, 4, SMALL_EMB).needs == {"reference"}


# ----------------------------------------------------------------------------- reference use
def test_resnet_ignores_reference():
    m = trained_model("resnet")
    b = make_batch([20, 31], [9, 25])
    b2 = {**b, "ref_audio": b["ref_audio"] + 5.0 * torch.randn_like(b["ref_audio"])}
    plain = {"audio": b["audio"], "audio_mask": b["audio_mask"]}
    with torch.no_grad():
        out = m(plain)
        assert torch.equal(m(b), out) and torch.equal(m(b2), out)


@pytest.mark.parametrize("arch", ["two_channel_resnet", "eresnet"])
def test_reference_changes_output(arch):
    m = trained_model(arch)
    b = make_batch([20, 31], [9, 25])
    other = make_batch([20, 31], [14, 25], seed=7)
    b2 = {**b, "ref_audio": other["ref_audio"], "ref_audio_mask": other["ref_audio_mask"]}
    with torch.no_grad():
        d = (m(b) - m(b2)).abs().amax(-1)
    assert torch.all(d > 1e-4), d


@pytest.mark.parametrize("arch", ["two_channel_resnet", "eresnet"])
def test_missing_or_empty_reference_is_an_error(arch):
    m = trained_model(arch)
    b = make_batch([20, 31])
    with pytest.raises(ValueError, match="needs a reference"):
        m(b)
    b = make_batch([20, 31], [9, 25])
    b["ref_audio_mask"][0] = False
    with pytest.raises(ValueError, match="no valid frame"):
        m(b)


# ----------------------------------------------------------------------------- padding
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("short", [1, 5, 13, 18, 33])
def test_padding_invariance_utterance(arch, short):
    # Lengths not divisible by 2, 4, 8, 16 hit the stride borders of every time stride.
    m = trained_model(arch)
    b = make_batch([short, 47, 30], [11, 26, 40])
    with torch.no_grad():
        batched = m(b)
        for i, n in enumerate([short, 47, 30]):
            n_ref = int(b["ref_audio_mask"][i].sum()) if "ref_audio" in b else None
            alone = row(b, i, n, n_ref)
            assert torch.allclose(m(alone)[0], batched[i], atol=1e-5), (arch, short, i)
            assert torch.allclose(m.embed(alone)[0], m.embed(b)[i], atol=1e-5)


@pytest.mark.parametrize("arch", ["two_channel_resnet", "eresnet"])
@pytest.mark.parametrize("ref_len", [1, 6, 17, 29])
def test_padding_invariance_reference(arch, ref_len):
    m = trained_model(arch)
    b = make_batch([21, 21], [ref_len, 45])
    with torch.no_grad():
        batched = m(b)[0]
        alone = m(row(b, 0, 21, ref_len))[0]
        # the same reference inside an even longer padded reference tensor
        longer = dict(b)
        longer["ref_audio"] = torch.cat([b["ref_audio"], 80.0 + torch.randn(2, 30, NF)], 1)
        longer["ref_audio_mask"] = torch.cat([b["ref_audio_mask"], torch.zeros(2, 30, dtype=torch.bool)], 1)
        assert torch.allclose(alone, batched, atol=1e-5)
        assert torch.allclose(m(longer)[0], batched, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_non_finite_padding_is_harmless(arch):
    m = trained_model(arch)
    b = make_batch([14, 30], [9, 25])
    bad = {k: v.clone() for k, v in b.items()}
    bad["audio"][0, 14:] = float("nan")
    bad["audio"][0, 20] = float("inf")
    bad["ref_audio"][0, 9:] = float("-inf")
    with torch.no_grad():
        assert torch.allclose(m(bad), m(b), atol=1e-6)


def test_eresnet_embedding_ignores_reference_padding():
    m = trained_model("eresnet")
    b = make_batch([10, 10], [7, 40])
    with torch.no_grad():
        e = m.speaker_embedding(b)
        assert torch.allclose(m.speaker_embedding(row(b, 0, 10, 7))[0], e[0], atol=1e-5)


def test_strided_mask_is_the_unpadded_conv_length():
    conv = nn.Conv2d(1, 1, (3, 3), stride=(2, 1), padding=(1, 1))
    for L in range(1, 12):
        out = conv(torch.zeros(1, 1, L, 4))
        mask = lengths_to_mask(torch.tensor([L, 11]), 11)
        assert int(strided_time_mask(mask, 2, 6)[0].sum()) == out.shape[2]


# ----------------------------------------------------------------------------- masked batch norm
def test_masked_batchnorm_training_equals_bn_on_unpadded_frames():
    torch.manual_seed(0)
    lengths = [5, 9, 2]
    x = torch.randn(3, 4, 9, 6) * 3.0 + 1.5
    mask = lengths_to_mask(torch.tensor(lengths), 9)
    x = torch.where(mask[:, None, :, None], x, torch.full_like(x, 1e3))  # garbage padding
    mbn, bn = MaskedBatchNorm2d(4, momentum=0.3), nn.BatchNorm2d(4, momentum=0.3)
    with torch.no_grad():
        mbn.weight.uniform_(0.5, 2.0)
        mbn.bias.uniform_(-1.0, 1.0)
    bn.load_state_dict(mbn.state_dict())
    # the unpadded valid frames, concatenated along time: what BN should see
    valid = torch.cat([x[i:i + 1, :, :n] for i, n in enumerate(lengths)], dim=2)
    xm = x.clone().requires_grad_(True)
    xv = valid.clone().requires_grad_(True)
    for _ in range(2):  # running statistics over two steps
        out = mbn(xm, mask)
        ref = bn(xv)
    got = torch.cat([out[i:i + 1, :, :n] for i, n in enumerate(lengths)], dim=2)
    assert torch.allclose(got, ref, atol=1e-5)
    assert torch.all(out[~mask[:, None, :, None].expand_as(out)] == 0)
    assert torch.allclose(mbn.running_mean, bn.running_mean, atol=1e-5)
    assert torch.allclose(mbn.running_var, bn.running_var, atol=1e-4)
    assert int(mbn.num_batches_tracked) == int(bn.num_batches_tracked) == 2
    # gradients flow as through BN on the valid frames (and never into padding)
    w = torch.randn_like(ref)
    (got * w).sum().backward()
    (ref * w).sum().backward()
    g = torch.cat([xm.grad[i:i + 1, :, :n] for i, n in enumerate(lengths)], dim=2)
    assert torch.allclose(g, xv.grad, atol=1e-5)
    assert torch.all(xm.grad[~mask[:, None, :, None].expand_as(xm)] == 0)
    assert torch.allclose(mbn.weight.grad, bn.weight.grad, atol=1e-4)
    # eval: running statistics, per position, padding zeroed
    mbn.eval()
    bn.eval()
    with torch.no_grad():
        assert torch.allclose(mbn(x, mask)[0, :, :5], bn(x[:1, :, :5])[0], atol=1e-5)


def test_masked_batchnorm_unpadded_batch_is_stock_batchnorm():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 7, 5)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mbn, bn = MaskedBatchNorm2d(3), nn.BatchNorm2d(3)
    assert torch.allclose(mbn(x, mask), bn(x), atol=1e-6)
    assert torch.allclose(mbn.running_var, bn.running_var)


def test_model_training_stats_ignore_padding():
    # One training-mode forward on a padded batch leaves the same running statistics as the
    # same utterances each cropped to their valid frames and batched without padding.
    torch.manual_seed(0)
    a = build_model("resnet", {"audio": NF}, 4, {**SMALL, "dropout": 0.0})
    b = build_model("resnet", {"audio": NF}, 4, {**SMALL, "dropout": 0.0})
    b.load_state_dict(a.state_dict())
    a.train()
    b.train()
    x, mask = padded([16, 16, 16], seed=2)
    y = torch.cat([x, 50.0 + torch.randn(3, 9, NF)], 1)  # same valid frames, extra padding
    ymask = torch.cat([mask, torch.zeros(3, 9, dtype=torch.bool)], 1)
    with torch.no_grad():
        out_a = a({"audio": x, "audio_mask": mask})
        out_b = b({"audio": y, "audio_mask": ymask})
    assert torch.allclose(out_a, out_b, atol=1e-5)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        if "running" in k:
            assert torch.allclose(sa[k], sb[k], atol=1e-5), k


# ----------------------------------------------------------------------------- conditioning
def test_align_reference_rules():
    ref = torch.arange(1.0, 7.0).view(1, 6, 1).repeat(2, 1, 1)  # frames 1..6
    ref_mask = lengths_to_mask(torch.tensor([3, 6]), 6)
    mask = lengths_to_mask(torch.tensor([8, 4]), 8)
    cyc = align_reference(ref, ref_mask, mask, "cycle")[..., 0]
    assert cyc.tolist() == [[1, 2, 3, 1, 2, 3, 1, 2], [1, 2, 3, 4, 0, 0, 0, 0]]
    crop = align_reference(ref, ref_mask, mask, "crop")[..., 0]
    assert crop.tolist() == [[1, 2, 3, 0, 0, 0, 0, 0], [1, 2, 3, 4, 0, 0, 0, 0]]


def test_zero_initialised_conditioning_is_the_plain_resnet():
    torch.manual_seed(0)
    plain = build_model("resnet", {"audio": NF}, 4, SMALL)
    torch.manual_seed(1)
    cond = build_model("eresnet", {"audio": NF}, 4, SMALL_EMB)
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(".cond" in k or k.startswith(("embedder.", "emb_out.")) for k in missing)
    b = make_batch([20, 31, 7], [9, 25, 30])
    for mode in ("train", "eval"):
        getattr(plain, mode)()
        getattr(cond, mode)()
        torch.manual_seed(5)  # same dropout masks
        out_p = plain(b)
        torch.manual_seed(5)
        out_c = cond(b)
        assert torch.allclose(out_p, out_c, atol=1e-6), mode
    # the embedding is not zero: only the zero-initialised mapping makes it vanish
    assert cond.speaker_embedding(b).abs().sum() > 0
    for blk in cond.trunk.blocks:
        for lin in (blk.cond1, blk.cond2):
            assert torch.all(lin.weight == 0) and torch.all(lin.bias == 0)


def test_conditioning_gets_gradients():
    torch.manual_seed(0)
    m = build_model("eresnet", {"audio": NF}, 3, SMALL_EMB).train()
    b = make_batch([20, 31, 7, 12], [9, 25, 30, 14])
    b.update(label=torch.tensor([0, 1, 2, 0]), weight=torch.ones(4))
    m.compute_objectives(b).backward()
    assert m.trunk.blocks[3].cond2.weight.grad.abs().sum() > 0
    # through the zero mapping the sub-network gets no gradient at the first step ...
    assert all(p.grad is None or torch.all(p.grad == 0) for p in m.embedder.parameters())


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("arch", ARCHS)
def test_few_steps_reduce_loss_on_separable_task(arch):
    torch.manual_seed(0)
    n, lengths = 12, [20, 31, 12, 26, 17, 24, 15, 29, 22, 18, 27, 13]
    labels = torch.arange(n) % 3
    b = make_batch(lengths, [10 + (i % 5) for i in range(n)] if arch != "resnet" else None, seed=1)
    # class-specific frequency pattern on the valid frames: linearly separable
    pattern = 3.0 * torch.randn(3, NF, generator=torch.Generator().manual_seed(2))
    b["audio"] = b["audio"] + pattern[labels][:, None, :] * b["audio_mask"][..., None]
    b.update(label=labels, weight=torch.ones(n))
    # fast-moving running statistics, so that eval mode after 25 steps reflects the training
    m = build_model(arch, {"audio": NF}, 3, {**HP[arch], "dropout": 0.0, "bn_momentum": 0.5}).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(m.compute_objectives(b))
    losses = [m.training_step(b, {"main": opt}, i / 25)["loss"] for i in range(25)]
    with torch.no_grad():
        after = float(m.compute_objectives(b))
    assert after < 0.5 * before, (before, after, losses)
    m.eval()
    with torch.no_grad():
        assert (m(b).argmax(-1) == labels).float().mean() >= 0.9


# ----------------------------------------------------------------------------- hparams
def test_bad_hparams():
    with pytest.raises(ValueError, match="kernel_size"):
        build_model("resnet", {"audio": NF}, 4, {**SMALL, "kernel_size": [3, 4]})
    with pytest.raises(ValueError, match="strides"):
        build_model("resnet", {"audio": NF}, 4, {**SMALL, "strides": [[2, 2]]})
    with pytest.raises(ValueError, match="channels"):
        build_model("resnet", {"audio": NF}, 4, {**SMALL, "channels": []})
    with pytest.raises(ValueError, match="emb_dim"):
        build_model("resnet", {"audio": NF}, 4, {**SMALL, "emb_dim": 8})  # unknown for resnet
    with pytest.raises(ValueError, match="emb_strides"):
        build_model("eresnet", {"audio": NF}, 4, {**SMALL_EMB, "emb_strides": [[1, 1]] * 3})
    with pytest.raises(ValueError, match="ref_align"):
        build_model("two_channel_resnet", {"audio": NF}, 4, {**SMALL, "ref_align": "pad"})
    with pytest.raises(ValueError, match="dropout"):
        build_model("eresnet", {"audio": NF}, 4, {**SMALL_EMB, "dropout": 1.0})
    with pytest.raises(ValueError, match="bn_momentum"):
        build_model("resnet", {"audio": NF}, 4, {**SMALL, "bn_momentum": 0})

"""Li et al. 2020: EC-only, multi-task, DAT and MEnAN on one encoder (li_adversarial)."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ser_pipeline.models import HparamError, build_model
from ser_pipeline.models.li_adversarial import (
    conv_lengths,
    LiMEnAN,
    cycle_repeat_to,
    dann_ramp,
    receptive_field,
)
from ser_pipeline.models.masking import lengths_to_mask

torch.set_num_threads(1)

ARCHS = ["li_emotion_only", "li_multitask", "li_dat", "li_menan"]
D = 43
N_SPK = 8


def make(arch, seed=0, **hp):
    torch.manual_seed(seed)
    return build_model(arch, {"audio": D}, 4, hp, n_speakers=N_SPK)


def make_batch(lengths, seed=0, pad_value=0.0, speakers=None, labels=None):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    B = len(lengths)
    x = torch.randn(B, T, D, generator=g)
    mask = lengths_to_mask(torch.tensor(lengths), T)
    x = torch.where(mask.unsqueeze(-1), x, torch.full_like(x, pad_value))
    return {
        "audio": x,
        "audio_mask": mask,
        "label": torch.tensor(labels if labels is not None else [i % 4 for i in range(B)]),
        "weight": torch.linspace(0.5, 1.5, B),
        "speaker": torch.tensor(speakers if speakers is not None else [i % N_SPK for i in range(B)]),
    }


def alone(batch, i, n):
    return {"audio": batch["audio"][i:i + 1, :n], "audio_mask": batch["audio_mask"][i:i + 1, :n],
            "label": batch["label"][i:i + 1], "weight": batch["weight"][i:i + 1],
            "speaker": batch["speaker"][i:i + 1]}


def optimizers(model, lr=1e-3):
    return {k: torch.optim.Adam(v, lr=lr) for k, v in model.optimizer_groups().items()}


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, module):
    after = module.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def encoder_and_emotion(model):
    return [model.convs, model.conv_acts, model.rnn, model.frame_proj, model.emotion_classifier]


# ---------------------------------------------------------------- shapes, contract


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_and_embed_shapes(arch):
    m = make(arch)
    b = make_batch([100, 23, 5])
    assert m(b).shape == (3, 4)
    assert m.embed(b).shape == (3, 96)
    assert ("speaker" in m.needs) == (arch != "li_emotion_only")


@pytest.mark.parametrize("arch", ARCHS)
def test_optimizer_groups_cover_every_parameter_once(arch):
    m = make(arch)
    groups = m.optimizer_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in m.parameters()}
    if arch == "li_menan":
        assert set(groups) == {"main", "speaker"}
        assert {id(p) for p in groups["speaker"]} == {id(p) for p in m.speaker_classifier.parameters()}
    else:
        assert set(groups) == {"main"}


@pytest.mark.parametrize("arch", ARCHS)
def test_training_steps_finite_and_loss_falls(arch):
    m = make(arch).train()
    opts = optimizers(m, lr=3e-3)
    b = make_batch([60, 40, 30, 25, 50, 45], seed=1)
    logs = [m.training_step(b, opts, progress=i / 40) for i in range(40)]
    assert list(logs[0])[0] == "loss"
    for log in logs:
        assert all(math.isfinite(v) for v in log.values()), log
    if arch == "li_menan":
        assert {"emotion_loss", "speaker_entropy", "speaker_loss", "speaker_acc"} <= set(logs[0])
    # the emotion part is learnable on a fixed batch in every scheme
    key = "loss" if arch == "li_emotion_only" else "emotion_loss"
    assert logs[-1][key] < logs[0][key]


def test_emotion_only_objective_is_weighted_ce():
    m = make("li_emotion_only")
    b = make_batch([30, 20, 40])
    ce = F.cross_entropy(m(b), b["label"], reduction="none")
    assert torch.allclose(m.compute_objectives(b), (ce * b["weight"]).mean())


def test_multitask_objective_is_lambda_weighted_sum():
    m = make("li_multitask", emotion_weight=0.3)
    b = make_batch([30, 20, 40])
    v = m.embed(b)
    emo = (F.cross_entropy(m.emotion_classifier(v), b["label"], reduction="none") * b["weight"]).mean()
    spk = F.cross_entropy(m.speaker_classifier(v), b["speaker"])
    assert torch.allclose(m.compute_objectives(b), 0.3 * emo + 0.7 * spk)


def test_hparam_and_speaker_errors():
    with pytest.raises(HparamError, match="emotion_weight"):
        make("li_multitask", emotion_weight=1.5)
    with pytest.raises(HparamError, match="grl_schedule"):
        make("li_dat", grl_schedule="linear")
    with pytest.raises(HparamError, match="unknown hyperparameter"):
        make("li_emotion_only", emotion_weight=0.5)  # EC-only has no speaker term
    with pytest.raises(HparamError, match="training speakers"):
        build_model("li_menan", {"audio": D}, 4, {}, n_speakers=1)
    with pytest.raises(HparamError, match="n_speakers"):
        LiMEnAN({"audio": D}, 4, {}, n_speakers=None)
    with pytest.raises(HparamError, match="strides"):
        make("li_emotion_only", strides=[2])


# ---------------------------------------------------------------- masks through strides


def test_conv_lengths_match_unpadded_convolutions():
    conv1 = torch.nn.Conv1d(1, 1, 10, stride=2)
    conv2 = torch.nn.Conv1d(1, 1, 5, stride=2)
    assert receptive_field([10, 5], [2, 2]) == 18
    for L in range(18, 70):
        n1 = conv1(torch.zeros(1, 1, L)).shape[-1]
        n2 = conv2(torch.zeros(1, 1, n1)).shape[-1]
        got = conv_lengths(conv_lengths(torch.tensor([L]), 10, 2), 5, 2)
        assert int(got) == n2, L
    # the boundary cases the padding test exercises: 23, 24, 25 -> 2 steps, 26 -> 3
    two = conv_lengths(conv_lengths(torch.tensor([17, 18, 23, 24, 25, 26]), 10, 2), 5, 2)
    assert two.tolist() == [0, 1, 2, 2, 2, 3]


@pytest.mark.parametrize("arch", ["li_emotion_only", "li_menan"])
@pytest.mark.parametrize("pad_value", [0.0, 30.0, float("nan")])
def test_padding_invariance(arch, pad_value):
    m = make(arch).eval()
    lengths = [23, 24, 25, 26, 100, 18, 17, 5, 1]
    b = make_batch(lengths, seed=2, pad_value=pad_value)
    with torch.no_grad():
        logits, emb = m(b), m.embed(b)
        assert torch.isfinite(logits).all() and torch.isfinite(emb).all()
        for i, n in enumerate(lengths):
            a = alone(b, i, n)
            assert torch.allclose(m(a)[0], logits[i], atol=1e-5), n
            assert torch.allclose(m.embed(a)[0], emb[i], atol=1e-5), n
        # a different batch-mate changes nothing either
        b2 = make_batch([23, 300], seed=2, pad_value=pad_value)
        assert torch.allclose(m.embed(b2)[0], m.embed(alone(b, 0, 23))[0], atol=1e-5)


def test_short_utterance_is_cycle_repeated_to_the_receptive_field():
    m = make("li_emotion_only").eval()
    x = torch.randn(1, 5, D)
    repeated = x[:, torch.arange(18) % 5]
    with torch.no_grad():
        assert torch.allclose(m.embed({"audio": x}), m.embed({"audio": repeated}), atol=1e-6)
    y, mask = cycle_repeat_to(torch.randn(2, 30, D), lengths_to_mask(torch.tensor([30, 4]), 30), 18)
    assert mask.sum(-1).tolist() == [30, 18]


def test_empty_utterance_is_an_error():
    m = make("li_emotion_only")
    b = make_batch([30, 20])
    b["audio_mask"][1] = False
    with pytest.raises(ValueError, match="no valid frame"):
        m(b)


def test_one_valid_step_gives_finite_std_and_gradients():
    m = make("li_emotion_only")
    b = make_batch([18, 18])  # one GRU step each: population std 0, not NaN
    emb = m.embed(b)
    assert torch.allclose(emb[:, 32:64], torch.full_like(emb[:, 32:64], math.sqrt(1e-5)))
    m.compute_objectives(b).backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


# ---------------------------------------------------------------- speakers outside training


@pytest.mark.parametrize("arch", ["li_multitask", "li_dat", "li_menan"])
def test_unknown_speakers_contribute_no_speaker_loss(arch):
    m = make(arch)
    lengths = [30, 30, 30, 30]
    b = make_batch(lengths, speakers=[3, -1, 5, -1])
    known = make_batch(lengths, speakers=[3, 0, 5, 0])
    keep = [0, 2]
    only_known = {k: (v[keep] if torch.is_tensor(v) else v) for k, v in known.items()}
    with torch.no_grad():
        v = m.embed(b)
        logits = m.speaker_classifier(v)
        ce, n = m.speaker_ce(logits, b)
        assert n == 2
        assert torch.allclose(ce, F.cross_entropy(logits[keep], only_known["speaker"]))
        ent, _ = m.speaker_entropy(logits, b)
        p = logits[keep].softmax(-1)
        assert torch.allclose(ent, -(p * p.log()).sum(-1).mean())
    # the -1 rows' embeddings get no gradient from the speaker term
    v = m.embed(b).detach().requires_grad_(True)
    m.speaker_ce(m.speaker_classifier(v), b)[0].backward()
    assert torch.all(v.grad[[1, 3]] == 0) and torch.any(v.grad[[0, 2]] != 0)
    # training on it works, every logged number is finite
    log = m.training_step(b, optimizers(m), progress=0.5)
    assert all(math.isfinite(x) for x in log.values())


def test_batch_without_training_speakers():
    m = make("li_menan")
    b = make_batch([30, 25], speakers=[-1, -1])
    before = snapshot(m.speaker_classifier)
    log = m.training_step(b, optimizers(m), progress=0.0)
    assert log["speaker_loss"] == 0.0 and not changed(before, m.speaker_classifier)
    assert all(math.isfinite(x) for x in log.values())
    mt = make("li_multitask")
    out = mt.losses(b)
    assert float(out["speaker_loss"].detach()) == 0.0 and out["speaker_rows"] == 0


@pytest.mark.parametrize("bad", [N_SPK, -2])
def test_out_of_range_speaker_index_is_an_error(bad):
    m = make("li_multitask")
    with pytest.raises(ValueError, match="speaker index"):
        m.compute_objectives(make_batch([30, 25], speakers=[0, bad]))


# ---------------------------------------------------------------- MEnAN


def test_menan_steps_update_only_their_own_modules():
    m = make("li_menan").train()
    opts = optimizers(m, lr=1e-2)
    b = make_batch([40, 30, 50, 35], seed=3, speakers=[0, 1, 2, 3])
    for _ in range(2):  # second round: Adam state exists, gradients from round 1 must not leak
        spk_before, enc_before = snapshot(m.speaker_classifier), [snapshot(x) for x in encoder_and_emotion(m)]
        m.speaker_step(b, opts["speaker"])
        assert changed(spk_before, m.speaker_classifier)
        assert not any(changed(s, x) for s, x in zip(enc_before, encoder_and_emotion(m)))

        spk_before, enc_before = snapshot(m.speaker_classifier), [snapshot(x) for x in encoder_and_emotion(m)]
        grads_before = [p.grad.clone() for p in m.speaker_classifier.parameters()]
        m.encoder_step(b, opts["main"])
        assert not changed(spk_before, m.speaker_classifier)
        # no gradient reached the frozen classifier: its step-1 gradients are untouched
        assert all(torch.equal(p.grad, g) for p, g in zip(m.speaker_classifier.parameters(), grads_before))
        assert all(p.requires_grad for p in m.speaker_classifier.parameters())  # unfrozen again
        for s, x in zip(enc_before, encoder_and_emotion(m)):
            if s:  # PReLU slopes / GRU etc.: every trainable module moves
                assert changed(s, x), type(x).__name__


def test_menan_speaker_gradients_are_step_one_only():
    # After a full training_step the speaker classifier's .grad must equal the gradient of
    # Eq. 1 alone: nothing from the entropy step (which runs later) may be added to it.
    m = make("li_menan").train()
    ref = copy.deepcopy(m)
    b = make_batch([40, 30, 50, 35], seed=4, speakers=[0, 1, 2, -1])
    m.training_step(b, optimizers(m), progress=0.0)
    v = ref.encode(b).detach()
    ref.speaker_ce(ref.speaker_classifier(v), b)[0].backward()
    for p, q in zip(m.speaker_classifier.parameters(), ref.speaker_classifier.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-7)


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_menan_encoder_steps_raise_speaker_entropy(lam):
    # Encoder at the paper's lr (1e-3): with Adam at 1e-2 the encoder overshoots into a
    # saturated region of the frozen classifier, where the entropy's gradient vanishes.
    m = make("li_menan", emotion_weight=lam).train()
    opts = {"speaker": torch.optim.Adam(m.optimizer_groups()["speaker"], lr=1e-2),
            "main": torch.optim.Adam(m.optimizer_groups()["main"], lr=1e-3)}
    b = make_batch([40, 30, 50, 35, 45, 28, 33, 60], seed=5)
    # make the speaker classifier confident first, so there is entropy to gain
    for _ in range(60):
        m.speaker_step(b, opts["speaker"])
    with torch.no_grad():
        h0 = float(m.speaker_entropy(m.speaker_classifier(m.embed(b)), b)[0])
    for _ in range(15):
        m.encoder_step(b, opts["main"])  # the speaker classifier stays fixed
    with torch.no_grad():
        h1 = float(m.speaker_entropy(m.speaker_classifier(m.embed(b)), b)[0])
    assert h0 < math.log(N_SPK) - 0.3  # there was something to remove
    assert h1 > h0 + 0.1


def test_menan_loss_is_eq5_plus_constant():
    m = make("li_menan", emotion_weight=0.5)
    b = make_batch([30, 20, 40])
    out = m.encoder_objective(b)
    eq5 = 0.5 * out["emotion_loss"] - 0.5 * out["speaker_entropy"]
    assert torch.allclose(out["loss"], eq5 + 0.5 * math.log(N_SPK))
    assert float(out["loss"].detach()) >= 0.5 * float(out["emotion_loss"].detach()) - 1e-6  # KL term >= 0


# ---------------------------------------------------------------- DAT


def encoder_params(m):
    return [p for mod in (m.convs, m.conv_acts, m.rnn, m.frame_proj) for p in mod.parameters()]


@pytest.mark.parametrize("schedule,progress,alpha", [
    ("constant", 0.1, 0.7),
    ("dann", 0.3, 0.7 * (2 / (1 + math.exp(-3.0)) - 1)),
])
def test_dat_reverses_the_speaker_gradient_into_the_encoder(schedule, progress, alpha):
    mt = make("li_multitask")
    dat = make("li_dat", grl_schedule=schedule, grl_coefficient=0.7)
    dat.load_state_dict(mt.state_dict())
    dat.set_progress(progress)
    assert dat.grl_alpha() == pytest.approx(alpha)
    b = make_batch([40, 30, 50], seed=6, speakers=[0, 1, -1])
    outs = {}
    for name, m in (("mt", mt), ("dat", dat)):
        m.zero_grad()
        out = m.losses(b)
        out["speaker_loss"].backward()
        outs[name] = out
        # same forward value: the GRL is the identity going forward
    assert torch.allclose(outs["mt"]["loss"], outs["dat"]["loss"])
    g_mt = torch.cat([p.grad.flatten() for p in encoder_params(mt)])
    g_dat = torch.cat([p.grad.flatten() for p in encoder_params(dat)])
    assert g_mt.abs().max() > 0
    assert torch.allclose(g_dat, -alpha * g_mt, atol=1e-7, rtol=1e-4)
    for p, q in zip(mt.speaker_classifier.parameters(), dat.speaker_classifier.parameters()):
        assert torch.allclose(p.grad, q.grad)  # the speaker classifier itself still learns speakers


def test_dat_emotion_gradient_is_unchanged_and_ramp_is_logged():
    mt = make("li_multitask")
    dat = make("li_dat")
    dat.load_state_dict(mt.state_dict())
    b = make_batch([40, 30, 50], seed=7)
    for m in (mt, dat):
        m.zero_grad()
        m.losses(b)["emotion_loss"].backward()
    for p, q in zip(encoder_params(mt), encoder_params(dat)):
        assert torch.equal(p.grad, q.grad)
    assert dann_ramp(0.0) == 0.0 and dann_ramp(1.0) == pytest.approx(1.0, abs=1e-4)
    log = dat.training_step(b, optimizers(dat), progress=0.5)
    assert log["grl_alpha"] == pytest.approx(dann_ramp(0.5))


@pytest.mark.parametrize("arch", ["li_dat", "li_menan"])
def test_nan_padding_never_reaches_gradients(arch):
    # 0 * NaN is NaN: padding must be zeroed before the first convolution, not just masked later
    m = make(arch).train()
    b = make_batch([60, 23, 30], seed=8, pad_value=float("nan"))  # all >= 18: no cycle repeat
    m.training_step(b, optimizers(m), progress=0.5)
    assert all(torch.isfinite(p).all() for p in m.parameters())

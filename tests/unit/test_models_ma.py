"""Ma et al. 2018 masked CRNN and the fixed-length (Satt et al.) segment helpers."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ser_pipeline.models import build_model
from ser_pipeline.models.ma_crnn import (
    bidirectional_last_first,
    masked_max_pool2d,
    pooled_time_mask,
)
from ser_pipeline.models.masking import lengths_to_mask
from ser_pipeline.models.segments import (
    average_segment_posteriors,
    length_and_class_weights,
    split_into_segments,
)

torch.set_num_threads(1)

NF = 16  # frequency bins in the small test network (the real input has 400)
SMALL = {
    "conv_channels": [4, 6],
    "kernel_sizes": [[3, 3], [3, 3]],
    "pool_sizes": [[2, 2], [3, 2]],
    "rnn_hidden": 8,
    "fc_units": 8,
}


def make_batch(lengths, nf=NF, seed=0, pad_value=0.0):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    x = torch.randn(len(lengths), T, nf, generator=g)
    mask = lengths_to_mask(torch.tensor(lengths), T)
    x = torch.where(mask.unsqueeze(-1), x, pad_value * torch.randn(x.shape, generator=g))
    return {"audio": x, "audio_mask": mask}


def alone(batch, i, n):
    return {"audio": batch["audio"][i:i + 1, :n], "audio_mask": batch["audio_mask"][i:i + 1, :n]}


def test_forward_shape_default_400_bins():
    m = build_model("ma_crnn", {"audio": 400}, 4, {})
    assert m(make_batch([37, 12], nf=400)).shape == (2, 4)
    assert m.rnn_input == 32 * 5  # 400 -> 100 -> 25 -> 5 bins, 32 channels


@pytest.mark.parametrize("activation", ["relu", "elu", "tanh"])
@pytest.mark.parametrize("short", [1, 5, 13, 18])
def test_padding_invariance(activation, short):
    # Lengths not divisible by the time pools (2, then 3) create border windows;
    # elu / tanh give negative conv outputs there.
    torch.manual_seed(0)
    m = build_model("ma_crnn", {"audio": NF}, 4, {**SMALL, "activation": activation}).eval()
    b = make_batch([short, 40], pad_value=30.0)
    with torch.no_grad():
        assert torch.allclose(m(alone(b, 0, short))[0], m(b)[0], atol=1e-5)
        # and the encoded sequence itself matches on every valid step
        seq_a, mask_a = m.encode(*alone(b, 0, short).values())
        seq_b, mask_b = m.encode(b["audio"], b["audio_mask"])
        n = int(mask_a.sum())
        assert int(mask_b[0].sum()) == n
        assert torch.allclose(seq_a[0, :n], seq_b[0, :n], atol=1e-5)
        assert torch.all(seq_b[0, n:] == 0)


def test_maxpool_border_last_valid_negative():
    # Paper's case: window holds y_V < 0 and a padding 0; expected y_V, not 0.
    y = torch.tensor([-5.0, -4.0, -2.0, 0.0]).view(1, 1, 4, 1)
    mask = torch.tensor([[True, True, True, False]])
    naive = F.max_pool2d(y * mask[:, None, :, None], (2, 1))
    assert naive.flatten().tolist() == [-4.0, 0.0]  # the bug the paper describes
    out, new_mask = masked_max_pool2d(y, mask, (2, 1))
    assert out.flatten().tolist() == [-4.0, -2.0]
    assert new_mask.tolist() == [[True, True]]
    # identical to the same utterance unpadded (odd length -> ceil-mode window)
    out1, m1 = masked_max_pool2d(y[:, :, :3], mask[:, :3], (2, 1))
    assert torch.equal(out1, out) and torch.equal(m1, new_mask)


@pytest.mark.parametrize("V", [1, 2, 5, 6, 7])
def test_maxpool_matches_unpadded_ceil_mode_pooling(V):
    # The "ground truth" for an utterance is what it gives with no padding at all:
    # ceil-mode pooling over its own valid frames. Batched with a longer one,
    # all-negative data must still give exactly that.
    g = torch.Generator().manual_seed(V)
    y = -torch.rand(2, 3, 9, 6, generator=g) - 0.1
    mask = lengths_to_mask(torch.tensor([V, 9]), 9)
    out, new_mask = masked_max_pool2d(y, mask, (2, 3))
    ref = F.max_pool2d(y[:1, :, :V], (2, 3), ceil_mode=True)
    n = ref.shape[-2]
    assert int(new_mask[0].sum()) == n
    assert torch.equal(out[:1, :, :n], ref)
    assert torch.all(out[0, :, n:] == 0)


def test_maxpool_all_padding_windows_are_zero_and_freq_ceil():
    y = -torch.rand(2, 3, 7, 5) - 1.0  # all negative
    mask = lengths_to_mask(torch.tensor([7, 2]), 7)
    out, new_mask = masked_max_pool2d(y, mask, (2, 2))
    assert out.shape == (2, 3, 4, 3)
    assert new_mask.tolist() == [[True] * 4, [True, False, False, False]]
    assert torch.all(out[1, :, 1:] == 0) and torch.isfinite(out).all()
    assert torch.allclose(out[1, :, 0, 0], y[1, :, :2, :2].amax((-1, -2)))
    assert torch.allclose(out[0, :, 3, 2], y[0, :, 6, 4])  # lone frame and bin


def test_pooled_mask_ceil_rule():
    mask = lengths_to_mask(torch.tensor([1, 2, 3, 4, 5]), 5)
    assert pooled_time_mask(mask, 2).sum(-1).tolist() == [1, 1, 2, 2, 3]
    assert pooled_time_mask(mask, 3).shape == (5, 2)


def test_birnn_takes_last_valid_forward_and_first_backward():
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(5, 4, batch_first=True, bidirectional=True)
    lengths = torch.tensor([3, 7, 1])
    x = torch.randn(3, 7, 5) * lengths_to_mask(lengths, 7).unsqueeze(-1)
    x[0, 3:] = 9.0  # garbage in padding must not matter
    summary = bidirectional_last_first(rnn, x, lengths)
    for i, V in enumerate(lengths.tolist()):
        out, _ = rnn(x[i:i + 1, :V])
        assert torch.allclose(summary[i, :4], out[0, V - 1, :4], atol=1e-6)  # forward at t = V
        assert torch.allclose(summary[i, 4:], out[0, 0, 4:], atol=1e-6)  # backward at t = 1


def test_gru_and_two_layers():
    m = build_model("ma_crnn", {"audio": NF}, 3, {**SMALL, "rnn_type": "gru", "rnn_layers": 2}).eval()
    b = make_batch([9, 20])
    with torch.no_grad():
        assert torch.allclose(m(alone(b, 0, 9))[0], m(b)[0], atol=1e-5)


def test_bad_hparams():
    with pytest.raises(ValueError, match="pool_sizes"):
        build_model("ma_crnn", {"audio": NF}, 4, {**SMALL, "pool_sizes": [[2, 2]]})
    with pytest.raises(ValueError, match="activation"):
        build_model("ma_crnn", {"audio": NF}, 4, {**SMALL, "activation": "swish"})
    with pytest.raises(ValueError, match="kernel_sizes"):
        build_model("ma_crnn", {"audio": NF}, 4, {**SMALL, "kernel_sizes": [[3, 0], 3]})


def test_overfits_eight_examples():
    torch.manual_seed(0)
    labels = torch.arange(8) % 4
    b = make_batch([20, 31, 12, 40, 25, 17, 33, 9], seed=1)
    centers = 2.0 * torch.randn(4, NF, generator=torch.Generator().manual_seed(2))
    b["audio"] = (0.5 * b["audio"] + centers[labels].unsqueeze(1)) * b["audio_mask"].unsqueeze(-1)
    m = build_model("ma_crnn", {"audio": NF}, 4, {**SMALL, "dropout": 0.0})
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(m(b), labels).backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        assert (m(b).argmax(-1) == labels).all()


# --- fixed-length segments -------------------------------------------------


@pytest.mark.parametrize("T,expected", [(1, [1]), (299, [299]), (300, [300]),
                                        (301, [300, 1]), (750, [300, 300, 150])])
def test_split_counts_and_zero_padding(T, expected):
    frames = np.arange(T * 3, dtype=np.float32).reshape(T, 3) + 1.0  # no zeros in data
    segs, lengths = split_into_segments(frames, seg_frames=300)
    assert lengths == expected
    assert all(s.shape == (300, 3) and s.dtype == np.float32 for s in segs)
    assert np.array_equal(np.concatenate(segs)[:T], frames)  # order kept, nothing lost
    assert np.all(segs[-1][expected[-1]:] == 0)


def test_split_torch_and_errors():
    segs, lengths = split_into_segments(torch.ones(7, 2, dtype=torch.float64), seg_frames=3)
    assert lengths == [3, 3, 1] and all(torch.is_tensor(s) and s.dtype == torch.float64 for s in segs)
    assert segs[-1].sum().item() == 2.0
    with pytest.raises(ValueError):
        split_into_segments(np.zeros((0, 4)), 300)
    with pytest.raises(ValueError):
        split_into_segments(np.zeros(10), 300)


def test_average_segment_posteriors():
    post = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9], [1.0, 0.0]])
    idx = torch.tensor([0, 0, 2, 1])
    out = average_segment_posteriors(post, idx)
    assert torch.allclose(out, torch.tensor([[0.6, 0.4], [1.0, 0.0], [0.1, 0.9]]))
    out_np = average_segment_posteriors(post.numpy(), idx.numpy())
    assert isinstance(out_np, np.ndarray) and np.allclose(out_np, out.numpy())
    with pytest.raises(ValueError, match="without segments"):
        average_segment_posteriors(post, torch.tensor([0, 0, 2, 2]))


def test_length_and_class_weights():
    lengths = [100, 200, 100, 400]
    labels = [0, 0, 1, 2]
    w = length_and_class_weights(lengths, labels, n_classes=3)
    raw = np.array([1 / (100 * 2), 1 / (200 * 2), 1 / 100, 1 / 400])
    assert np.allclose(w.numpy(), raw / raw.mean())
    assert w.mean().item() == pytest.approx(1.0)
    # equal lengths and balanced classes -> all ones
    assert torch.allclose(length_and_class_weights([5, 5, 5, 5], [0, 1, 0, 1], 2), torch.ones(4))
    with pytest.raises(ValueError):
        length_and_class_weights([5, 5], [0, 3], 2)

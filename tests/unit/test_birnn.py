"""The dense CPU path of models/birnn.py gives the packed path's outputs and gradients."""
import pytest
import torch
from torch import nn

from ser_pipeline.models.birnn import bidirectional, last_and_first, reversal_index


def test_reversal_index_reverses_the_valid_part_only():
    idx = reversal_index(torch.tensor([3, 5, 0]), 5)
    assert idx.tolist() == [[2, 1, 0, 3, 4], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4]]


def _grads(rnn, x, fn):
    rnn.zero_grad()
    x = x.detach().requires_grad_(True)
    out = fn(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [p.grad.clone() for p in rnn.parameters()] + [x.grad.clone()]


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
def test_dense_path_equals_packed_path(cls, layers):
    torch.manual_seed(0)
    rnn = cls(7, 5, num_layers=layers, batch_first=True, bidirectional=True)
    x = torch.randn(4, 9, 7)
    lengths = torch.tensor([9, 4, 1, 6])
    x[1, 4:] = 100.0  # padding content must not matter
    dense, g_dense = _grads(rnn, x, lambda v: bidirectional(rnn, v, lengths, path="dense"))
    packed, g_packed = _grads(rnn, x, lambda v: bidirectional(rnn, v, lengths, path="packed"))
    torch.testing.assert_close(dense, packed, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_dense, g_packed):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert (dense[1, 4:] == 0).all() and (dense[2, 1:] == 0).all()
    # each row alone gives the same outputs as in the batch
    alone = bidirectional(rnn, x[1:2, :4], lengths[1:2], path="dense")
    torch.testing.assert_close(alone, dense[1:2, :4], atol=1e-6, rtol=1e-5)


def test_last_and_first_are_the_final_states():
    torch.manual_seed(1)
    rnn = nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(3, 6, 3)
    lengths = torch.tensor([6, 2, 5])
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, (h, _) = rnn(packed)
    expected = torch.cat([h[-2], h[-1]], dim=-1)
    got = last_and_first(bidirectional(rnn, x, lengths, path="dense"), lengths)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_inter_layer_dropout_only_in_training():
    torch.manual_seed(2)
    rnn = nn.GRU(3, 4, num_layers=2, batch_first=True, bidirectional=True, dropout=0.5)
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 3])
    rnn.eval()
    torch.testing.assert_close(bidirectional(rnn, x, lengths, path="dense"),
                               bidirectional(rnn, x, lengths, path="packed"), atol=1e-5, rtol=1e-5)
    rnn.train()
    assert not torch.allclose(bidirectional(rnn, x, lengths, path="dense"),
                              bidirectional(rnn, x, lengths, path="dense"))


def test_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="bidirectional"):
        bidirectional(nn.LSTM(3, 4, batch_first=True), torch.zeros(1, 2, 3), torch.tensor([2]))
    with pytest.raises(ValueError, match="projection"):
        bidirectional(nn.LSTM(3, 4, batch_first=True, bidirectional=True, proj_size=2),
                      torch.zeros(1, 2, 3), torch.tensor([2]))

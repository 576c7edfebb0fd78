"""FastDropout behaves as nn.Dropout: drop rate, scale, eval identity, seeding, gradient."""
import pytest
import torch

from ser_pipeline.models.dropout import FastDropout


def test_training_mode_drops_p_and_rescales_the_rest():
    torch.manual_seed(0)
    d = FastDropout(0.2).train()
    x = torch.ones(200, 50, 40)
    y = d(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.2) < 0.005
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - 13107 / 65536)))
    assert abs(y.mean().item() - 1.0) < 0.01, "expectation preserved"


def test_eval_mode_and_p_zero_are_the_identity():
    x = torch.randn(4, 7, 3)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x


def test_masks_follow_torch_manual_seed_and_differ_between_steps():
    def two_steps(seed):
        torch.manual_seed(seed)
        d = FastDropout(0.3).train()
        x = torch.ones(8, 16)
        return d(x), d(x)

    a1, a2 = two_steps(1)
    b1, b2 = two_steps(1)
    c1, _ = two_steps(2)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2) and not torch.equal(a1, c1)


def test_gradient_is_the_mask():
    torch.manual_seed(0)
    x = torch.randn(6, 10, requires_grad=True)
    y = FastDropout(0.25).train()(x)
    y.sum().backward()
    expected = torch.where(y != 0, torch.full_like(x, 1 / (1 - 0.25)), torch.zeros_like(x))
    assert torch.allclose(x.grad, expected)


def test_probability_out_of_range_is_refused():
    with pytest.raises(ValueError, match="dropout"):
        FastDropout(1.0)

"""KDLoss against hand-computed values."""
import math

import pytest
import torch

from mmnckd.models.losses import KDLoss


def test_kd_hand_value():
    tau = 2.0
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[tau * math.log(3.0), 0.0]])  # teacher probs 3/4, 1/4
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    loss = KDLoss(tau=tau, loss_weight=0.5)(s, t)
    assert loss.item() == pytest.approx(0.5 * tau**2 * kl, abs=1e-6)


def test_kd_random_and_identity():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(5, 7, generator=gen, requires_grad=True)
    t = torch.randn(5, 7, generator=gen, requires_grad=True)
    tau = 4.0
    q = torch.softmax(t.double() / tau, 1)
    p = torch.softmax(s.double() / tau, 1)
    expected = tau**2 * (q * (q.log() - p.log())).sum() / 5
    loss = KDLoss(tau=tau)(s, t)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert s.grad is not None and t.grad is None
    assert KDLoss()(s, s).abs().item() < 1e-6


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_kd_low_precision(dtype):
    gen = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, 5, generator=gen), torch.randn(4, 5, generator=gen)
    loss = KDLoss()(s.to(dtype), t.to(dtype))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(KDLoss()(s, t).item(), abs=2e-2)


def test_kd_shape_error():
    with pytest.raises(ValueError, match='same shape'):
        KDLoss()(torch.rand(2, 3), torch.rand(2, 4))

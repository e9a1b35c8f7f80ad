"""DKDLoss against hand-computed values and a direct reference."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmnckd.models.losses import DKDLoss


def dkd_batch(tau):
    # Probabilities at temperature tau are exactly the normalised weights.
    s = tau * torch.log(torch.tensor([[1., 2., 1.], [1., 1., 2.]]))
    t = tau * torch.log(torch.tensor([[2., 1., 1.], [3., 1., 4.]]))
    labels = torch.tensor([0, 2])
    # sample 0: p = [1/4, 1/2, 1/4], q = [1/2, 1/4, 1/4], target 0
    tckd0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    nckd0 = 0.5 * math.log(0.5 / (2 / 3)) + 0.5 * math.log(0.5 / (1 / 3))
    # sample 1: p = [1/4, 1/4, 1/2], q = [3/8, 1/8, 1/2], target 2
    tckd1 = 0.5 * math.log(0.5 / 0.5) + 0.5 * math.log(0.5 / 0.5)
    nckd1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    return s, t, labels, (tckd0 + tckd1) / 2, (nckd0 + nckd1) / 2


def test_dkd_hand_value():
    tau, alpha, beta = 2.0, 1.5, 3.0
    s, t, labels, tckd, nckd = dkd_batch(tau)
    crit = DKDLoss(
        alpha=alpha, beta=beta, tau=tau, warmup_epochs=0, loss_weight=0.5)
    expected = 0.5 * tau**2 * (alpha * tckd + beta * nckd)
    assert crit(s, t, labels).item() == pytest.approx(expected, abs=1e-5)
    # TCKD and NCKD separately.
    only_t = DKDLoss(alpha=1.0, beta=0.0, tau=tau, warmup_epochs=0)
    only_n = DKDLoss(alpha=0.0, beta=1.0, tau=tau, warmup_epochs=0)
    assert only_t(s, t, labels).item() == pytest.approx(
        tau**2 * tckd, abs=1e-5)
    assert only_n(s, t, labels).item() == pytest.approx(
        tau**2 * nckd, abs=1e-5)


def test_dkd_per_sample_scaling():
    s, t, labels, _, _ = dkd_batch(4.0)
    crit = DKDLoss(warmup_epochs=0)
    single = crit(s, t, labels)
    doubled = crit(
        torch.cat([s, s]), torch.cat([t, t]), torch.cat([labels, labels]))
    assert doubled.item() == pytest.approx(single.item(), rel=1e-6)


def test_dkd_warmup():
    s, t, labels, _, _ = dkd_batch(4.0)
    crit = DKDLoss(warmup_epochs=4)
    full = crit(s, t, labels).item()  # epoch=None -> factor 1
    assert crit(s, t, labels, epoch=0).item() == pytest.approx(full / 4)
    assert crit(s, t, labels, epoch=1).item() == pytest.approx(full / 2)
    assert crit(s, t, labels, epoch=3).item() == pytest.approx(full)
    assert crit(s, t, labels, epoch=50).item() == pytest.approx(full)
    no_warm = DKDLoss(warmup_epochs=0)
    assert no_warm(s, t, labels, epoch=0).item() == pytest.approx(full)


def test_dkd_soft_labels_use_argmax():
    s, t, labels, _, _ = dkd_batch(4.0)
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    crit = DKDLoss(warmup_epochs=0)
    assert crit(s, t, soft).item() == pytest.approx(
        crit(s, t, labels).item(), rel=1e-6)


def test_dkd_reference_random_and_grad():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(6, 5, generator=gen, requires_grad=True)
    t = torch.randn(6, 5, generator=gen, requires_grad=True)
    labels = torch.randint(0, 5, (6, ), generator=gen)
    tau, alpha, beta = 3.0, 1.0, 8.0
    gt = F.one_hot(labels, 5).double()
    p = torch.softmax(s.double() / tau, 1)
    q = torch.softmax(t.double() / tau, 1)
    bp = torch.stack([(p * gt).sum(1), (p * (1 - gt)).sum(1)], 1)
    bq = torch.stack([(q * gt).sum(1), (q * (1 - gt)).sum(1)], 1)
    tckd = (bq * (bq.log() - bp.log())).sum(1).mean()
    qs = torch.softmax(t.double() / tau - 1000 * gt, 1)
    log_ps = torch.log_softmax(s.double() / tau - 1000 * gt, 1)
    nckd = (torch.xlogy(qs, qs) - qs * log_ps).sum(1).mean()
    expected = tau**2 * (alpha * tckd + beta * nckd)
    loss = DKDLoss(alpha, beta, tau, warmup_epochs=0)(s, t, labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    loss.backward()
    assert torch.isfinite(s.grad).all() and t.grad is None


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_dkd_low_precision_and_confident(dtype):
    s = torch.tensor([[100.0, 0.0, 0.0], [0.0, 3.0, -2.0]])
    t = torch.tensor([[0.0, 100.0, 0.0], [1.0, 1.0, 1.0]])
    loss = DKDLoss(
        tau=1.0, warmup_epochs=0)(s.to(dtype), t.to(dtype),
                                  torch.tensor([0, 1]))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_dkd_errors():
    with pytest.raises(ValueError, match='num_classes'):
        DKDLoss()(torch.rand(2, 3), torch.rand(2, 3), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match='same shape'):
        DKDLoss()(torch.rand(2, 3), torch.rand(2, 2), torch.tensor([0, 1]))

"""PrototypeAlignLoss (NC1) against hand-computed values."""
import math

import pytest
import torch

from mmnckd.models.losses import PrototypeAlignLoss

SQ3 = math.sqrt(3.0)


def unit(deg):
    rad = math.radians(deg)
    return [math.cos(rad), math.sin(rad)]


def tri_prototypes():
    """Unit prototypes at 90, 210 and 330 degrees: centred, a 3-class ETF."""
    return torch.tensor([unit(90), unit(210), unit(330)])


def align_batch():
    # z0 is 60 deg from p0, z1 is on p1 (norm 2), z2 is 90 deg from p2.
    z = torch.tensor(
        [unit(150), [2 * c for c in unit(210)], [3 * c for c in unit(60)]])
    labels = torch.tensor([0, 1, 2])
    return z, labels


def test_align_hand_value():
    z, labels = align_batch()
    expected = ((1 - math.cos(math.pi / 3)) + 0.0 +
                (1 - math.cos(math.pi / 2))) / 3
    loss = PrototypeAlignLoss()(z, labels, tri_prototypes())
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss = PrototypeAlignLoss(loss_weight=2.0)(z, labels, tri_prototypes())
    assert loss.item() == pytest.approx(2 * expected, abs=1e-6)


def test_align_contrastive_hand_value():
    z, labels = align_batch()
    tau, cw = 0.5, 0.3
    # cos(z_i, p_k) rows: z0 at 150, z1 at 210, z2 at 60 degrees.
    ce0 = -0.5 / tau + math.log(
        math.exp(0.5 / tau) + math.exp(0.5 / tau) + math.exp(-1 / tau))
    ce1 = -1 / tau + math.log(
        math.exp(-0.5 / tau) + math.exp(1 / tau) + math.exp(-0.5 / tau))
    ce2 = -0 / tau + math.log(
        math.exp(SQ3 / 2 / tau) + math.exp(-SQ3 / 2 / tau) + math.exp(0))
    align = ((1 - 0.5) + 0 + 1) / 3
    expected = align + cw * (ce0 + ce1 + ce2) / 3
    loss = PrototypeAlignLoss(
        contrast_weight=cw, tau=tau)(z, labels, tri_prototypes())
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_align_soft_labels():
    z = torch.tensor([unit(150)])
    soft = torch.tensor([[0.6, 0.0, 0.4]])
    # cos(z, p0) = cos(60 deg), cos(z, p2) = cos(180 deg)
    expected = 0.6 * (1 - math.cos(math.pi / 3)) + 0.4 * (1 -
                                                          math.cos(math.pi))
    loss = PrototypeAlignLoss()(z, soft, tri_prototypes())
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # Both terms are linear in the label weights: mixup == mixed losses.
    crit = PrototypeAlignLoss(contrast_weight=0.5, tau=0.2)
    mixed = crit(z, soft, tri_prototypes())
    hard0 = crit(z, torch.tensor([0]), tri_prototypes())
    hard2 = crit(z, torch.tensor([2]), tri_prototypes())
    assert mixed.item() == pytest.approx(
        0.6 * hard0.item() + 0.4 * hard2.item(), abs=1e-5)


def test_align_gradients():
    z, labels = align_batch()
    z.requires_grad_(True)
    protos = tri_prototypes().requires_grad_(True)
    PrototypeAlignLoss(contrast_weight=1.0)(z, labels, protos).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert z.grad.abs().sum() > 0
    assert protos.grad is None


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_align_low_precision(dtype):
    z, labels = align_batch()
    ref = PrototypeAlignLoss(contrast_weight=1.0)(z, labels, tri_prototypes())
    loss = PrototypeAlignLoss(contrast_weight=1.0)(z.to(dtype), labels,
                                                   tri_prototypes().to(dtype))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), abs=2e-2)


def test_align_zero_norm_features():
    z = torch.zeros(2, 2, requires_grad=True)
    loss = PrototypeAlignLoss(contrast_weight=1.0)(z, torch.tensor([0, 1]),
                                                   tri_prototypes())
    assert torch.isfinite(loss)
    # cos = 0 with every prototype: align = 1, CE = log(3).
    assert loss.item() == pytest.approx(1.0 + math.log(3.0), abs=1e-5)
    loss.backward()
    assert torch.isfinite(z.grad).all()


def test_align_errors():
    crit = PrototypeAlignLoss()
    with pytest.raises(ValueError, match=r'dim 3 .*dim 2.*out_channels'):
        crit(torch.rand(2, 3), torch.tensor([0, 1]), tri_prototypes())
    with pytest.raises(ValueError, match='num_classes'):
        crit(torch.rand(2, 2), torch.tensor([0, 3]), tri_prototypes())
    with pytest.raises(ValueError, match='labels'):
        crit(torch.rand(3, 2), torch.tensor([0, 1]), tri_prototypes())

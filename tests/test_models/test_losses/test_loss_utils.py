"""``mmnckd.models.losses.utils``: label checks (``label_weights``) and the
zero-norm guard, as every loss applies them."""
import pytest
import torch
from mmpretrain.structures import DataSample
from small_models import D_T, K, unit_prototypes

from mmnckd.models.heads import ETFHead
from mmnckd.models.losses import (DKDLoss, ETFStructureLoss,
                                  PrototypeAlignLoss, label_weights)


def test_label_weights_hard_and_soft():
    w = label_weights(torch.tensor([2, 0]), 3)
    assert w.dtype == torch.float32
    assert torch.equal(w, torch.tensor([[0., 0., 1.], [1., 0., 0.]]))
    soft = torch.tensor([[0.3, 0.7, 0.0]], dtype=torch.float16)
    w = label_weights(soft, 3)
    assert w.dtype == torch.float32
    assert torch.allclose(w, soft.float())


@pytest.mark.parametrize('bad', [3, -1])
def test_label_weights_out_of_range(bad):
    with pytest.raises(ValueError, match=rf'Label {bad} .*num_classes'):
        label_weights(torch.tensor([0, bad]), 3)


def test_label_weights_bad_shapes():
    with pytest.raises(ValueError, match='num_classes'):
        label_weights(torch.rand(2, 4), 3)
    with pytest.raises(ValueError, match='integer'):
        label_weights(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match='shape'):
        label_weights(torch.zeros(2, 3, 1, dtype=torch.long), 3)


@pytest.mark.parametrize(
    'loss', [
        PrototypeAlignLoss(),
        ETFStructureLoss(num_classes=K, feat_dim=D_T),
        DKDLoss(),
    ],
    ids=['nc1', 'nc2', 'dkd'])
def test_labels_out_of_range_in_losses(loss):
    z = torch.randn(4, D_T)
    logits = torch.randn(4, K)

    def call(labels):
        if isinstance(loss, DKDLoss):
            return loss(logits, logits.flip(0), labels)
        return loss(z, labels, unit_prototypes())

    for bad, value in (([0, 1, 2, K], K), ([0, -1, 2, 3], -1)):
        with pytest.raises(ValueError) as err:
            call(torch.tensor(bad))
        msg = str(err.value)
        assert f'Label {value} is out of range [0, {K})' in msg
        assert '`num_classes`' in msg
    with pytest.raises(
            ValueError, match=r'\(N, 6\), got \(4, 7\).*'
            'num_classes'):
        call(torch.full((4, K + 1), 1.0 / (K + 1)))  # soft labels, wrong K
    assert torch.isfinite(call(torch.tensor([0, 1, 2, K - 1])))


def test_zero_norm_student_features_losses_and_head_finite():
    labels = torch.tensor([0, 1, 2, 2, 5, 5])
    protos = unit_prototypes()
    losses = [
        PrototypeAlignLoss(contrast_weight=1.0),
        ETFStructureLoss(num_classes=K, feat_dim=D_T, momentum=0.0),
        ETFStructureLoss(num_classes=K, feat_dim=D_T, target='etf')
    ]
    for loss in losses:
        for z in (torch.zeros(6, D_T), torch.randn(6, D_T) *
                  (labels == 2)[:, None]):  # all zero / some rows zero
            z.requires_grad_(True)
            value = loss(z, labels, protos)
            value.backward()
            assert torch.isfinite(value) and torch.isfinite(z.grad).all()
    head = ETFHead(num_classes=K, in_channels=D_T, learnable_scale=True)
    feats = torch.zeros(6, D_T, requires_grad=True)
    logits = head((feats, ))
    assert torch.equal(logits, torch.zeros(6, K))
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    loss = head.loss((feats, ), samples)['loss']
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(feats.grad).all()
    assert torch.isfinite(head.log_scale.grad)


@pytest.mark.parametrize(
    'loss_type',
    ['PrototypeAlignLoss', 'ETFStructureLoss', 'KDLoss', 'DKDLoss'])
@pytest.mark.parametrize('weight', [-0.5, float('nan'), float('inf')])
def test_loss_weight_must_be_finite_and_non_negative(loss_type, weight):
    from mmpretrain.registry import MODELS

    import mmnckd  # noqa: F401
    cfg = dict(type=loss_type, loss_weight=weight)
    if loss_type == 'ETFStructureLoss':
        cfg.update(num_classes=4, feat_dim=8)
    with pytest.raises(
            ValueError, match=rf'{loss_type}: loss_weight must be .*{weight}'):
        MODELS.build(cfg)
    cfg['loss_weight'] = 0.0  # switched off is fine
    assert MODELS.build(cfg).loss_weight == 0.0

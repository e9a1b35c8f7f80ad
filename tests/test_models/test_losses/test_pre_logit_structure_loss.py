"""PreLogitStructureLoss: NC2 on the student's own pre-logit features, with
teacher prototypes of another width; in a distiller its gradient reaches the
student's features and not the projector."""
import pytest
import torch
from mmpretrain.registry import MODELS
from small_models import D_T, K, classifier, labelled_batch
from test_etf_structure_loss import (features_with_means, known_case_expected,
                                     tri_prototypes)

from mmnckd.models.losses import ETFStructureLoss, PreLogitStructureLoss


def test_known_value_with_wider_prototypes():
    # the 3 prototypes of the hand-computed ETFStructureLoss case, embedded
    # in 5 dims (and rotated): P P^T is unchanged, so is the loss
    protos = torch.cat([tri_prototypes(), torch.zeros(3, 3)], dim=1)
    q, _ = torch.linalg.qr(
        torch.randn(5, 5, generator=torch.Generator().manual_seed(0)))
    z, labels = features_with_means([[1., 0.], [-1., 0.], [0., 3.]])
    loss = PreLogitStructureLoss(3, 2, loss_weight=2.0)(z, labels, protos @ q)
    assert loss.item() == pytest.approx(
        2.0 * known_case_expected() / 9, abs=1e-6)
    same = ETFStructureLoss(3, 2, loss_weight=2.0)(z, labels, tri_prototypes())
    assert loss.item() == pytest.approx(same.item(), abs=1e-6)


def test_bad_inputs_name_the_shapes():
    crit = PreLogitStructureLoss(3, 2)
    z, labels = features_with_means([[1., 0.], [-1., 0.], [0., 3.]])
    with pytest.raises(
            ValueError,
            match=r'\(num_classes, feat_dim\) = '
            r'\(3, None\), got \(4, 7\)'):
        crit(z, labels, torch.zeros(4, 7))
    with pytest.raises(
            ValueError,
            match=r'PreLogitStructureLoss expects '
            r'features of shape \(N, feat_dim\) = \(N, 2\)'):
        crit(torch.zeros(6, 5), labels, torch.zeros(3, 7))
    with pytest.raises(ValueError, match='needs the teacher prototypes'):
        crit(z, labels, None)
    # ETFStructureLoss still wants prototypes of its own width
    with pytest.raises(ValueError, match=r'= \(3, 2\), got \(3, 7\)'):
        ETFStructureLoss(3, 2)(z, labels, torch.zeros(3, 7))


def plugin_distiller(nc2_type):
    """KD + NC1 on the projected z + NC2 of type ``nc2_type``: the
    plug-in form on a learned linear head (student pre-logits 16-d)."""
    return MODELS.build(
        dict(
            type='NCKDDistiller',
            student=classifier(2),
            teacher=classifier(4),
            projector=dict(type='Projector', in_channels=16, out_channels=D_T),
            distill_losses=dict(
                loss_kd=dict(type='KDLoss', tau=4.0),
                loss_nc2=dict(type=nc2_type))))


def test_distiller_feeds_student_feats_and_not_the_projector():
    torch.manual_seed(0)
    model = plugin_distiller('PreLogitStructureLoss')
    loss_nc2 = model.distill_losses.loss_nc2
    # the distiller fills in the student's pre-logit width
    assert loss_nc2.feat_dim == 16 and loss_nc2.memory.shape == (K, 16)
    model.set_prototypes(torch.randn(K, D_T))
    model.train()
    inputs, samples = labelled_batch(list(range(K)) * 2)
    nc2 = model.loss(inputs, samples)['distill.loss_nc2']
    assert nc2.item() > 0
    model.zero_grad()
    nc2.backward()
    # no projector between the loss and the features: its weights get no
    # gradient, the backbone's do
    assert all(p.grad is None for p in model.projector.parameters())
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    # ETFStructureLoss in the same place takes the projected z instead
    torch.manual_seed(0)
    model = plugin_distiller('ETFStructureLoss')
    model.set_prototypes(torch.randn(K, D_T))
    model.train()
    model.loss(inputs, samples)['distill.loss_nc2'].backward()
    assert model.projector.proj[0].weight.grad.abs().sum() > 0

"""What ``NCKDDistiller`` adds, on small random models: prototypes and head
weights, the prototype-cosine KD target, the plug-in mode (linear head +
projector), a dead (all-zero) teacher, mixed precision and the warning for
a projector that cannot reach the rank of a simplex ETF."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from small_models import (D_T, NC_STUDENT, K, all_losses_distiller,
                          assert_finite_step, batch, classifier, distiller,
                          labelled_batch, ready, ready_to_train,
                          unit_prototypes)

import mmnckd  # noqa: F401
from mmnckd.models.losses import KDLoss, PrototypeAlignLoss
from mmnckd.models.utils import etf_gram


def test_prototypes_and_head_weights():
    model = distiller()
    mu = torch.randn(K, 32)
    model.set_prototypes(mu)
    centred = mu - mu.mean(0)
    expected = centred / centred.norm(dim=1, keepdim=True)
    assert torch.allclose(model.prototypes, expected, atol=1e-6)
    assert torch.allclose(model.student.head.weight, expected, atol=1e-6)
    nearest = distiller(head_weights='nearest_etf')
    nearest.set_prototypes(mu)
    w = nearest.student.head.weight
    assert torch.allclose(w @ w.T, etf_gram(K), atol=1e-5)
    canonical = distiller(head_weights='canonical')
    initial = canonical.student.head.weight.clone()
    canonical.set_prototypes(mu)
    assert torch.equal(canonical.student.head.weight, initial)
    with pytest.raises(ValueError, match=r'\(6, 32\).*another dataset'):
        model.set_prototypes(torch.randn(K + 1, 32))


def test_loss_without_prototypes_says_which_hook():
    model = distiller()
    inputs, samples, _ = batch()
    with pytest.raises(RuntimeError, match='TeacherPrototypeHook'):
        model(inputs, samples, mode='loss')


def test_plug_in_mode_with_linear_head_and_projector():
    model = distiller(
        student=classifier(2),
        projector=dict(type='Projector', in_channels=16, out_channels=32),
        distill_losses=dict(
            loss_nc1=dict(type='PrototypeAlignLoss'),
            loss_nc2=dict(type='ETFStructureLoss', target='etf')))
    ready(model).train()
    inputs, samples, _ = batch()
    losses = model(inputs, samples, mode='loss')
    model.parse_losses(losses)[0].backward()
    assert model.projector.parameters().__next__().grad is not None


def test_prototype_cosine_kd_target():
    model = ready(distiller(kd_target='prototype_cosine'))
    t = torch.randn(4, 32)
    logits = model.teacher_logits(None, t)
    centred = torch.nn.functional.normalize(t - model.teacher_global_mean)
    expected = model.student.head.scale * centred @ model.prototypes.T
    assert torch.allclose(logits, expected, atol=1e-5)
    assert logits.abs().max() <= model.student.head.scale + 1e-5


@pytest.mark.parametrize('head_weights', ['teacher', 'nearest_etf'])
def test_zero_norm_teacher_features_full_step_finite(head_weights):
    """A dead teacher (all features zero): zero prototypes, zero head
    weights; every loss and gradient stays finite."""
    model = all_losses_distiller(
        head_weights=head_weights, kd_target='prototype_cosine')
    model.set_prototypes(torch.zeros(K, D_T))
    assert torch.equal(model.prototypes, torch.zeros(K, D_T))
    assert torch.isfinite(model.student.head.weight).all()

    def dead(inputs, stage='neck'):
        return (torch.zeros(inputs.shape[0], D_T), )

    model.teacher.extract_feat = dead
    model.train()
    inputs, samples = labelled_batch([0, 1, 2, 3, 4, 5, 0, 1])
    assert_finite_step(model, model(inputs, samples, mode='loss'))


def _cpu_autocast_dtypes():
    dtypes = [torch.bfloat16]
    try:
        with torch.autocast('cpu', dtype=torch.float16):
            torch.ones(2, 2) @ torch.ones(2, 2)
        dtypes.append(torch.float16)
    except (RuntimeError, ValueError):  # CPU autocast without fp16
        pass
    return dtypes


@pytest.mark.parametrize('dtype', _cpu_autocast_dtypes(), ids=str)
def test_autocast_steps_finite_and_etf_cosine_in_fp32(dtype):
    model = ready_to_train(all_losses_distiller())
    inputs, samples = labelled_batch([0, 1, 2, 3, 4, 5, 0, 1])
    with torch.autocast('cpu', dtype=dtype):
        losses = model(inputs, samples, mode='loss')
        feats = model.student.extract_feat(inputs)
        logits = model.student.head(feats)
    assert feats[-1].dtype == dtype  # the network ran in low precision
    assert logits.dtype == torch.float32  # the cosine did not
    head = model.student.head
    expected = head.scale * (
        F.normalize(feats[-1].float(), dim=1) @ F.normalize(
            head.weight.float(), dim=1).T)
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-6)
    assert_finite_step(model, losses)  # float32 losses, finite gradients
    for loss in (PrototypeAlignLoss(), KDLoss()):
        with torch.autocast('cpu', dtype=dtype):
            x = torch.randn(4, D_T).to(dtype)
            value = (
                loss(x, torch.tensor([0, 1, 2, 3]), unit_prototypes())
                if isinstance(loss, PrototypeAlignLoss) else loss(
                    torch.randn(4, K).to(dtype), torch.randn(4, K)))
        assert value.dtype == torch.float32 and torch.isfinite(value)


def _etf_student(**projector):
    """The small NCKD student (ETF head on 32-d teacher features) with an
    MLP Projector neck of the given arguments."""
    neck = dict(type='Projector', in_channels=16, out_channels=D_T, mode='mlp')
    neck.update(projector)
    return classifier(
        2,
        neck=neck,
        head=dict(type='ETFHead', num_classes=K, in_channels=D_T))


def _rank_warnings(**projector):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        distiller(student=_etf_student(**projector))
    return [
        str(w.message) for w in caught
        if 'student representation can reach rank' in str(w.message)
    ]


def test_projector_below_etf_rank_warns():
    """An MLP projector of hidden width 4 reaches rank 4 < K - 1 = 5: a
    6-class simplex ETF head cannot separate every class."""
    with pytest.warns(
            UserWarning,
            match=r'can reach rank 4 at most, below num_classes - 1 = 5 '
            r'.*use a Projector with mode="mlp" and hidden_channels >= 6'):
        distiller(student=_etf_student(hidden_channels=4))


@pytest.mark.parametrize('hidden', [5, 32], ids=['rank-K-1', 'rank-32'])
def test_projector_reaching_etf_rank_does_not_warn(hidden):
    """Rank K - 1 = 5 (the boundary) or more: no warning."""
    assert _rank_warnings(hidden_channels=4)  # the control warns
    assert _rank_warnings(hidden_channels=hidden) == []


def _init_head_distiller(**kwargs):
    """The ETF-head form's student with a learnable linear head started
    from the prototypes."""
    student = classifier(
        2,
        neck=NC_STUDENT['neck'],
        head=dict(type='LinearClsHead', num_classes=K, in_channels=D_T))
    return distiller(student=student, head_init='prototypes', **kwargs)


def test_head_init_from_prototypes_once():
    model = _init_head_distiller()
    fc = model.student.head.fc
    assert not bool(model.head_initialised)
    mu = torch.randn(K, D_T)
    model.set_prototypes(mu)
    # default scale sqrt(2) ln(K - 1) / sqrt(d) = sqrt(2) ln 5 / sqrt(32)
    scale = 2**0.5 * 1.6094379 / 32**0.5
    assert abs(scale - 0.402359) < 1e-5
    assert torch.allclose(fc.weight, scale * model.prototypes, atol=1e-6)
    assert torch.equal(fc.bias, torch.zeros(K))
    assert bool(model.head_initialised)
    # a trained head is kept when the prototypes are set again (a
    # recomputation on resume), and the flag travels in the state dict
    with torch.no_grad():
        fc.weight.add_(1.0)
    trained = fc.weight.clone()
    model.set_prototypes(torch.randn(K, D_T))
    assert torch.equal(fc.weight, trained)
    fresh = _init_head_distiller()
    fresh.load_state_dict(model.state_dict())
    fresh.set_prototypes(torch.randn(K, D_T))
    assert torch.equal(fresh.student.head.fc.weight, trained)


def test_without_head_init_the_state_dict_keeps_its_keys():
    """Checkpoints of configs without head_init load strictly as before."""
    assert 'head_initialised' not in distiller().state_dict()
    assert 'head_initialised' in _init_head_distiller().state_dict()


def test_head_init_scale_and_a_training_step():
    model = _init_head_distiller(head_init_scale=2.0)
    assert model.needs_prototypes
    ready(model).train()
    assert torch.allclose(model.student.head.fc.weight, 2.0 * model.prototypes)
    inputs, samples, _ = batch()
    losses = model(inputs, samples, mode='loss')
    assert_finite_step(model, losses)
    assert model.student.head.fc.weight.grad is not None


def test_head_init_bad_values_named_at_build():
    with pytest.raises(ValueError, match=r"head_init must be one of.*'etf'"):
        distiller(head_init='etf')
    with pytest.raises(ValueError, match='head_init_scale must be > 0'):
        _init_head_distiller(head_init_scale=0.0)
    with pytest.raises(ValueError, match='LinearClsHead.*got ETFHead'):
        distiller(head_init='prototypes')
    # the plug-in layout: the linear head on the 16-d backbone features,
    # the losses on a projection to 32: the head cannot take P
    with pytest.raises(ValueError, match=r'in_channels=16 must equal.*32'):
        distiller(
            student=classifier(2),
            projector=dict(type='Projector', in_channels=16, out_channels=32),
            head_init='prototypes')

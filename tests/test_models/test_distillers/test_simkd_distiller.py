"""SimKDDistiller (and NCKD on top of it): the projected student map has
the teacher's channels, the loss is SimKDLoss of the recorded maps, the
reused teacher classifier is frozen, out of the optimizer, unchanged by
steps, equal to the teacher's after loading a teacher checkpoint and saved
with the student; predictions go through it. (The exported Omniglot
student: test_omniglot_distillers.py.)"""
import pytest
import torch
from mmengine.optim import build_optim_wrapper as _build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from small_models import TEACHER, K, classifier, labelled_batch

import mmnckd  # noqa: F401
from mmnckd.models.losses import SimKDLoss


def build_optim_wrapper(model, cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return _build_optim_wrapper(model, cfg)


def simkd_student(head=None, neck=None):
    return classifier(
        2,
        neck=neck or dict(type='SimKDNeck', in_channels=16, out_channels=32),
        head=head or dict(
            type='FrozenLinearClsHead',
            num_classes=K,
            in_channels=32,
            loss=dict(type='CrossEntropyLoss', loss_weight=0.0)))


def simkd(**kwargs):
    cfg = dict(
        type='SimKDDistiller',
        student=simkd_student(),
        teacher=TEACHER,
        distill_losses=dict(loss_simkd=dict(type='SimKDLoss')))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def perturbed_teacher_ckpt(path):
    torch.manual_seed(3)
    teacher = MODELS.build(TEACHER)
    with torch.no_grad():
        teacher.head.fc.weight.normal_()
        teacher.head.fc.bias.uniform_(-1, 1)
    torch.save(dict(state_dict=teacher.state_dict()), path)
    return teacher


def test_loss_is_simkd_loss_of_the_projected_and_teacher_maps():
    model = simkd().train()
    inputs, samples = labelled_batch([0, 1, 2, 3, 4, 5])
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'student.loss', 'distill.loss_simkd'}
    assert losses['student.loss'].item() == 0.0  # SimKD: no CE
    s_map = model.student.neck.project(model.student.backbone(inputs)[-1])
    with torch.no_grad():
        t_map = model.teacher.backbone(inputs)[-1]
    assert s_map.shape == t_map.shape == (6, 32, 2, 2)  # teacher channels
    expected = SimKDLoss()(s_map, t_map)
    assert losses['distill.loss_simkd'].item() == pytest.approx(
        expected.item(), rel=1e-5)
    total, _ = model.parse_losses(losses)
    total.backward()
    assert model.student.neck.projector[0].weight.grad.abs().sum() > 0
    assert model.student.head.fc.weight.grad is None
    assert all(p.grad is None for p in model.teacher.parameters())


def test_reused_head_equals_the_loaded_teacher_and_is_saved(tmp_path):
    teacher = perturbed_teacher_ckpt(tmp_path / 'teacher.pth')
    model = simkd(teacher_ckpt=str(tmp_path / 'teacher.pth'))
    assert not torch.equal(model.student.head.fc.weight,
                           teacher.head.fc.weight)
    model.init_weights()
    assert torch.equal(model.student.head.fc.weight, teacher.head.fc.weight)
    assert torch.equal(model.student.head.fc.bias, teacher.head.fc.bias)
    # load_teacher on its own copies it too
    other = simkd()
    other.load_teacher(str(tmp_path / 'teacher.pth'))
    assert torch.equal(other.student.head.fc.bias, teacher.head.fc.bias)
    # saved as part of the student; the teacher is not saved
    state = model.state_dict()
    assert torch.equal(state['student.head.fc.weight'], teacher.head.fc.weight)
    assert not any(k.startswith('teacher.') for k in state)
    resumed = simkd()
    resumed.load_state_dict(state, strict=False)
    assert torch.equal(resumed.student.head.fc.weight, teacher.head.fc.weight)


@pytest.mark.parametrize('paramwise', [False, True])
def test_reused_head_is_frozen_and_out_of_the_optimizer(paramwise):
    model = simkd()
    model.init_weights()
    head = model.student.head.fc
    assert not head.weight.requires_grad and not head.bias.requires_grad
    cfg = dict(
        constructor='DistillerOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=0.1))
    if paramwise:
        cfg['paramwise_cfg'] = dict(norm_decay_mult=0.0)
    optim = build_optim_wrapper(model, cfg)
    in_optim = {
        id(p)
        for g in optim.optimizer.param_groups
        for p in g['params']
    }
    assert id(head.weight) not in in_optim and id(head.bias) not in in_optim
    trainable = {
        id(p)
        for n, p in model.named_parameters()
        if not n.startswith('teacher.') and p.requires_grad
    }
    assert in_optim == trainable
    before = head.weight.clone(), head.bias.clone()
    neck_before = model.student.neck.projector[0].weight.clone()
    model.train()
    for step in range(2):
        inputs, samples = labelled_batch([0, 1, 2, 3], seed=step)
        model.train_step(dict(inputs=inputs, data_samples=samples), optim)
    assert torch.equal(head.weight, before[0])
    assert torch.equal(head.bias, before[1])
    assert torch.equal(head.weight, model.teacher.head.fc.weight)
    assert not torch.equal(model.student.neck.projector[0].weight, neck_before)


def test_predictions_go_through_the_teacher_classifier():
    model = simkd()
    model.init_weights()
    model.eval()
    inputs, _ = labelled_batch([0, 1, 2])
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
        pooled = model.student.neck(model.student.backbone(inputs))[0]
        by_teacher = model.teacher.head.fc(pooled)
        preds = model(inputs, mode='predict')
    torch.testing.assert_close(logits, by_teacher)
    assert preds[0].pre_logits.shape == (32, )
    assert torch.equal(preds[0].cls_weight, model.teacher.head.fc.weight)


def test_build_errors_name_the_fix():
    with pytest.raises(ValueError, match='type="FrozenLinearClsHead"'):
        simkd(
            student=simkd_student(
                head=dict(type='LinearClsHead', num_classes=K,
                          in_channels=32)))
    with pytest.raises(ValueError, match='"SimKDNeck"'):
        simkd(
            student=simkd_student(
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='FrozenLinearClsHead', num_classes=K,
                    in_channels=16)))
    with pytest.raises(ValueError, match='out_channels=24 but the teacher'):
        simkd(
            student=simkd_student(
                neck=dict(type='SimKDNeck', in_channels=16, out_channels=24),
                head=dict(
                    type='FrozenLinearClsHead', num_classes=K,
                    in_channels=24)))


def test_nckd_on_simkd_puts_nc_losses_on_the_pooled_projection():
    captured = {}
    model = MODELS.build(
        dict(
            type='NCKDSimKDDistiller',
            student=simkd_student(),
            teacher=TEACHER,
            distill_losses=dict(
                loss_simkd=dict(type='SimKDLoss'),
                loss_nc1=dict(type='PrototypeAlignLoss'),
                loss_nc2=dict(type='ETFStructureLoss'))))
    model.distill_losses.loss_nc1.register_forward_pre_hook(
        lambda m, args, kwargs: captured.update(kwargs), with_kwargs=True)
    assert model.needs_prototypes
    inputs, samples = labelled_batch([0, 1, 2, 3, 4, 5])
    with pytest.raises(RuntimeError, match='TeacherPrototypeHook'):
        model.train()(inputs, samples, mode='loss')
    torch.manual_seed(0)
    model.set_prototypes(torch.randn(K, 32))
    losses = model(inputs, samples, mode='loss')
    assert {'distill.loss_simkd', 'distill.loss_nc1',
            'distill.loss_nc2'} <= set(losses)
    pooled = model.student.neck(model.student.backbone(inputs))[0]
    torch.testing.assert_close(captured['z'], pooled)
    torch.testing.assert_close(captured['prototypes'], model.prototypes)

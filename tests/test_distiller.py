"""NCKDDistiller on small random models: gradients, teacher handling,
prototypes, head weights, checkpoints."""
import pytest
import torch
from mmpretrain.structures import DataSample

import mmnckd  # noqa: F401
from mmnckd.models.utils import etf_gram
from mmpretrain.registry import MODELS

from small_models import K, NC_STUDENT, TEACHER, classifier


def distiller(**kwargs):
    cfg = dict(
        type='NCKDDistiller', student=NC_STUDENT, teacher=TEACHER,
        distill_losses=dict(
            loss_nc1=dict(type='PrototypeAlignLoss'),
            loss_nc2=dict(type='ETFStructureLoss'),
            loss_kd=dict(type='KDLoss', tau=4.0)))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def batch(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 1, 28, 28, generator=gen)
    labels = torch.arange(n) % K
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, samples, labels


def ready(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    model.set_prototypes(torch.randn(K, 32, generator=gen))
    return model


def test_loss_keys_and_gradients_reach_student_only():
    model = ready(distiller())
    model.train()
    inputs, samples, _ = batch()
    losses = model(inputs, samples, mode='loss')
    assert set(losses) >= {'student.loss', 'distill.loss_nc1',
                           'distill.loss_nc2', 'distill.loss_kd'}
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    student_grads = [p.grad for p in model.student.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in student_grads)
    assert model.student.neck.parameters().__next__().grad is not None
    assert model.student.head.log_scale.grad is not None
    # the ETF weight is a buffer: fixed
    assert 'student.head.weight' not in dict(model.named_parameters())


def test_teacher_stays_in_eval_mode():
    model = distiller(teacher=dict(TEACHER, head=dict(
        type='LinearClsHead', num_classes=K, in_channels=32,
        init_cfg=None)))
    model.train()
    assert model.student.training
    assert not any(m.training for m in model.teacher.modules())
    # BN running stats of the teacher do not move in training steps
    ready(model)
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    inputs, samples, _ = batch()
    model(inputs, samples, mode='loss')
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


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


def test_predict_runs_student_and_attaches_features():
    model = ready(distiller())
    model.eval()
    inputs, samples, _ = batch()
    with torch.no_grad():
        preds = model(inputs, samples, mode='predict')
        logits = model(inputs, mode='tensor')
        student_logits = model.student(inputs, mode='tensor')
    assert torch.allclose(logits, student_logits)
    assert preds[0].pre_logits.shape == (32, )
    assert preds[0].cls_weight.shape == (K, 32)
    assert torch.equal(preds[0].pred_label, logits[0].argmax().view(1))


def test_checkpoint_holds_no_teacher_and_loads_back():
    model = ready(distiller())
    state = model.state_dict()
    assert not any(k.startswith('teacher.') for k in state)
    assert 'prototypes' in state and 'student.head.weight' in state
    other = distiller()
    from mmengine.runner.checkpoint import load_state_dict
    load_state_dict(other, state, strict=True)  # teacher keys not "missing"
    assert bool(other.prototypes_ready)
    assert torch.equal(other.student.head.weight, model.student.head.weight)
    kept = distiller(save_teacher=True)
    assert any(k.startswith('teacher.') for k in kept.state_dict())


def test_teacher_checkpoint_loading(tmp_path):
    teacher = MODELS.build(TEACHER)
    path = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict()), path)
    model = distiller(teacher_ckpt=str(path))
    model.init_weights()
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k
    wrong = MODELS.build(classifier(8))
    torch.save(dict(state_dict=wrong.state_dict()), tmp_path / 'wrong.pth')
    with pytest.raises(RuntimeError, match='does not match model.teacher'):
        distiller(teacher_ckpt=str(tmp_path / 'wrong.pth')).init_weights()
    partial = {k: v for k, v in teacher.state_dict().items()
               if not k.startswith('head.')}
    torch.save(dict(state_dict=partial), tmp_path / 'partial.pth')
    with pytest.raises(RuntimeError, match=r"missing keys \['head.fc.bias'"):
        distiller(teacher_ckpt=str(tmp_path / 'partial.pth')).init_weights()
    with pytest.raises(FileNotFoundError, match='train the teacher first'):
        distiller(teacher_ckpt=str(tmp_path / 'nope.pth')).init_weights()
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='could not be read'):
        distiller(teacher_ckpt=str(tmp_path / 'junk.pth')).init_weights()


def test_build_errors_name_the_config_key():
    with pytest.raises(ValueError, match='num_classes'):
        distiller(teacher=dict(TEACHER, head=dict(
            type='LinearClsHead', num_classes=K + 1, in_channels=32)))
    with pytest.raises(ValueError, match='model.projector'):
        distiller(student=classifier(2), distill_losses=dict(
            loss_nc1=dict(type='PrototypeAlignLoss')))
    with pytest.raises(ValueError, match='must start with "loss_"'):
        distiller(distill_losses=dict(nc1=dict(type='PrototypeAlignLoss')))
    with pytest.raises(ValueError, match='head_weights'):
        distiller(head_weights='random')


def test_plug_in_mode_with_linear_head_and_projector():
    model = distiller(
        student=classifier(2),
        projector=dict(type='Projector', in_channels=16, out_channels=32),
        distill_losses=dict(loss_nc1=dict(type='PrototypeAlignLoss'),
                            loss_nc2=dict(type='ETFStructureLoss',
                                          target='etf')))
    ready(model).train()
    inputs, samples, _ = batch()
    losses = model(inputs, samples, mode='loss')
    model.parse_losses(losses)[0].backward()
    assert model.projector.parameters().__next__().grad is not None


def test_soft_labels_from_mixup():
    model = ready(distiller())
    model.train()
    inputs, samples, labels = batch()
    scores = torch.nn.functional.one_hot(labels, K).float()
    mixed = 0.7 * scores + 0.3 * scores.roll(1, 0)
    for s, m in zip(samples, mixed):
        s.set_gt_score(m)
    losses = model(inputs, samples, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())


def test_prototype_cosine_kd_target():
    model = ready(distiller(kd_target='prototype_cosine'))
    t = torch.randn(4, 32)
    logits = model.teacher_logits(None, t)
    centred = torch.nn.functional.normalize(t - model.teacher_global_mean)
    expected = model.student.head.scale * centred @ model.prototypes.T
    assert torch.allclose(logits, expected, atol=1e-5)
    assert logits.abs().max() <= model.student.head.scale + 1e-5


def test_optimizer_holds_student_params_only(caplog):
    from mmnckd.engine.optimizers import DistillerOptimWrapperConstructor
    model = distiller()
    constructor = DistillerOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4)),
        paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.)}))
    optim = constructor(model).optimizer
    in_optim = {id(p) for g in optim.param_groups for p in g['params']}
    teacher = {id(p) for p in model.teacher.parameters()}
    trainable = {id(p) for n, p in model.named_parameters()
                 if not n.startswith('teacher.')}
    assert in_optim == trainable and not in_optim & teacher
    scale_group = [g for g in optim.param_groups
                   if g['params'][0] is model.student.head.log_scale]
    assert scale_group[0]['weight_decay'] == 0.0
    assert 'is skipped since its requires_grad' not in caplog.text

"""What ``SingleTeacherDistiller`` implements, exercised through its NCKD
subclass on small random models: the frozen teacher (eval mode, no
gradients, its checkpoint loaded strictly with errors that name the key),
the checkpoint without the teacher, the student-only predict, build-time
config errors, loss inputs and soft (Mixup / CutMix) labels."""
import pytest
import torch
from mmpretrain.registry import MODELS
from small_models import (D_T, NC_STUDENT, TEACHER, K, all_losses_distiller,
                          assert_finite_step, batch, classifier, distiller,
                          labelled_batch, ready, ready_to_train)

import mmnckd  # noqa: F401
from mmnckd.models.distillers import SingleTeacherDistiller


def test_loss_keys_and_gradients_reach_student_only():
    model = ready(distiller())
    model.train()
    inputs, samples, _ = batch()
    losses = model(inputs, samples, mode='loss')
    assert set(losses) >= {
        'student.loss', 'distill.loss_nc1', 'distill.loss_nc2',
        'distill.loss_kd'
    }
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    student_grads = [p.grad for p in model.student.backbone.parameters()]
    assert all(
        g is not None and torch.isfinite(g).all() for g in student_grads)
    assert model.student.neck.parameters().__next__().grad is not None
    assert model.student.head.log_scale.grad is not None
    # the ETF weight is a buffer: fixed
    assert 'student.head.weight' not in dict(model.named_parameters())


def test_teacher_stays_in_eval_mode():
    model = distiller(
        teacher=dict(
            TEACHER,
            head=dict(
                type='LinearClsHead',
                num_classes=K,
                in_channels=32,
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
    partial = {
        k: v
        for k, v in teacher.state_dict().items() if not k.startswith('head.')
    }
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
        distiller(
            teacher=dict(
                TEACHER,
                head=dict(
                    type='LinearClsHead', num_classes=K + 1, in_channels=32)))
    with pytest.raises(ValueError, match='model.projector'):
        distiller(
            student=classifier(2),
            distill_losses=dict(loss_nc1=dict(type='PrototypeAlignLoss')))
    with pytest.raises(ValueError, match='must start with "loss_"'):
        distiller(distill_losses=dict(nc1=dict(type='PrototypeAlignLoss')))
    with pytest.raises(ValueError, match='head_weights'):
        distiller(head_weights='random')


def test_class_count_mismatch_names_num_classes():
    teacher = classifier(
        4, head=dict(type='LinearClsHead', num_classes=K + 1, in_channels=D_T))
    with pytest.raises(ValueError) as err:
        all_losses_distiller(teacher=teacher)
    msg = str(err.value)
    assert 'model.teacher.head.num_classes=7' in msg
    assert 'model.student.head.num_classes=6' in msg


def test_projector_output_must_match_teacher_dim():
    with pytest.raises(ValueError) as err:
        all_losses_distiller(
            student=classifier(2),
            projector=dict(type='Projector', in_channels=16, out_channels=24),
            distill_losses=dict(loss_nc1=dict(type='PrototypeAlignLoss')))
    msg = str(err.value)
    assert 'model.projector.out_channels is 24' in msg
    assert f'teacher feature dim is {D_T}' in msg
    assert f'out_channels={D_T}' in msg  # the fix, spelled out


def test_student_neck_and_head_widths_checked_at_build():
    """A neck narrower than the ETF head used to pass the build and the
    whole prototype pass, then fail in a matmul."""
    import copy
    student = copy.deepcopy(NC_STUDENT)
    student['neck']['out_channels'] = 24
    with pytest.raises(ValueError) as err:
        distiller(student=student)
    msg = str(err.value)
    assert 'model.student.neck.out_channels=24' in msg
    assert f'model.student.head.in_channels={D_T}' in msg
    assert f'teacher feature dim, {D_T}' in msg
    # and a projector that does not take the student's pre-logits
    with pytest.raises(
            ValueError,
            match='model.projector.in_channels=8 '
            'but the student pre-logit dim'):
        all_losses_distiller(
            student=classifier(2),
            projector=dict(type='Projector', in_channels=8, out_channels=D_T),
            distill_losses=dict(loss_nc1=dict(type='PrototypeAlignLoss')))


def test_teacher_ckpt_missing(tmp_path):
    model = all_losses_distiller(teacher_ckpt=str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'model.teacher_ckpt=' in msg and 'nope.pth' in msg
    assert 'train the teacher first' in msg


def test_teacher_ckpt_unreadable(tmp_path):
    path = tmp_path / 'junk.pth'
    path.write_bytes(b'this is not a checkpoint')
    model = all_losses_distiller(teacher_ckpt=str(path))
    with pytest.raises(RuntimeError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'model.teacher_ckpt=' in msg and 'could not be read' in msg
    assert 'torch.save(dict(state_dict=' in msg  # how to write a good one


def test_teacher_ckpt_for_another_architecture_lists_keys(tmp_path):
    state = MODELS.build(classifier(8)).state_dict()  # twice as wide
    del state['head.fc.bias']
    state['extra.weight'] = torch.zeros(3)
    torch.save(dict(state_dict=state), tmp_path / 'other.pth')
    model = all_losses_distiller(teacher_ckpt=str(tmp_path / 'other.pth'))
    with pytest.raises(RuntimeError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'does not match model.teacher' in msg
    assert "missing keys ['head.fc.bias'] (1)" in msg
    assert "unexpected keys ['extra.weight'] (1)" in msg
    assert "'backbone.bn1.bias: (8,) vs (4,)'" in msg  # checkpoint vs model
    assert 'Use the config the teacher was trained with' in msg


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


def _mix_preprocessor():
    return dict(
        type='ClsDataPreprocessor',
        num_classes=K,
        batch_augments=dict(augments=[
            dict(type='Mixup', alpha=1.0),
            dict(type='CutMix', alpha=1.0)
        ]))


@pytest.mark.parametrize('route', ['distiller', 'student_train_cfg'])
def test_mixup_cutmix_soft_labels_through_a_full_step(route):
    if route == 'distiller':  # model.data_preprocessor.batch_augments
        model = all_losses_distiller(data_preprocessor=_mix_preprocessor())
    else:  # mmpretrain's own route: the student's train_cfg.augments
        student = dict(
            NC_STUDENT,
            train_cfg=dict(augments=[
                dict(type='Mixup', alpha=1.0),
                dict(type='CutMix', alpha=1.0)
            ]),
            data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=K))
        model = all_losses_distiller(student=student)
    ready_to_train(model)
    torch.manual_seed(0)
    for step in range(4):  # both augments get drawn
        inputs, samples = labelled_batch([0, 1, 2, 3, 4, 5, 0, 1], seed=step)
        data = model.data_preprocessor(
            dict(inputs=inputs, data_samples=samples), training=True)
        scores = torch.stack([s.gt_score for s in data['data_samples']])
        assert scores.shape == (8, K)
        assert torch.allclose(scores.sum(1), torch.ones(8))
        assert (scores.max(1).values < 1).any()  # really mixed
        assert_finite_step(model, model(**data, mode='loss'))
    # the NC2 memory was fed by the soft class weights
    assert model.distill_losses.loss_nc2.memory_valid.all()


# ------------------------------------------ student_feats and sample_idx
class _Probe(torch.nn.Module):
    """A loss that records what the distiller binds to its arguments."""

    def __init__(self, student_feat_dim, teacher_feat_dim):
        super().__init__()
        self.dims = (student_feat_dim, teacher_feat_dim)
        self.seen = {}

    def forward(self, student_feats, z, sample_idx):
        self.seen = dict(student_feats=student_feats, z=z, idx=sample_idx)
        return student_feats.sum() * 0.0


MODELS.register_module('_ProbeLoss', module=_Probe, force=True)


def _probe_distiller(**kwargs):
    return MODELS.build(
        dict(
            type='SingleTeacherDistiller',
            student=classifier(2),
            teacher=TEACHER,
            projector=dict(type='Projector', in_channels=16, out_channels=D_T),
            distill_losses=dict(loss_probe=dict(type='_ProbeLoss')),
            **kwargs))


def test_student_feats_are_the_unprojected_pre_logits():
    model = _probe_distiller().train()
    probe = model.distill_losses.loss_probe
    # student_feat_dim / teacher_feat_dim filled in from the heads
    assert probe.dims == (16, D_T)
    inputs, samples = labelled_batch([0, 1, 2, 3])
    for i, s in enumerate(samples):
        s.set_metainfo(dict(sample_idx=10 + 3 * i))
    model(inputs, samples, mode='loss')
    feats = model.student.head.pre_logits(model.student.extract_feat(inputs))
    assert probe.seen['student_feats'].shape == (4, 16)
    torch.testing.assert_close(probe.seen['student_feats'], feats)
    assert probe.seen['z'].shape == (4, D_T)  # projected
    torch.testing.assert_close(probe.seen['z'], model.projector(feats))
    assert probe.seen['idx'].tolist() == [10, 13, 16, 19]
    assert probe.seen['idx'].dtype == torch.long


def test_missing_sample_idx_names_the_fix():
    model = _probe_distiller().train()
    inputs, samples = labelled_batch([0, 1, 2])
    samples[0].set_metainfo(dict(sample_idx=0))
    with pytest.raises(ValueError) as err:
        model(inputs, samples, mode='loss')
    msg = str(err.value)
    assert 'data samples [1, 2]' in msg
    assert 'meta_keys' in msg and 'PackInputs' in msg


def test_teacher_runs_only_for_teacher_inputs():
    model = _probe_distiller().train()
    calls = []
    model.teacher.backbone.register_forward_pre_hook(
        lambda *a: calls.append('teacher'))
    inputs, samples = labelled_batch([0, 1])
    for i, s in enumerate(samples):
        s.set_metainfo(dict(sample_idx=i))
    model(inputs, samples, mode='loss')
    assert calls == []  # the probe names no teacher input
    assert SingleTeacherDistiller.teacher_inputs == ('teacher_logits',
                                                     'teacher_feats')


def test_pack_inputs_keeps_the_dataset_index_through_collation():
    """mmengine's BaseDataset writes sample_idx, mmpretrain's PackInputs
    keeps it, default_collate passes the data samples through."""
    import numpy as np
    from mmengine.dataset import BaseDataset, default_collate
    from mmpretrain.datasets.transforms import PackInputs

    class _Tiny(BaseDataset):

        def load_data_list(self):
            return [
                dict(img=np.full((4, 4), i, np.uint8), gt_label=i % 2)
                for i in range(6)
            ]

    data = _Tiny(
        pipeline=[PackInputs()],
        indices=[1, 3, 5],  # a subset: numbered 0..2 again
        serialize_data=False)
    batch = default_collate([data[i] for i in range(len(data))])
    idx = SingleTeacherDistiller._sample_idx(batch['data_samples'], 'cpu')
    assert idx.tolist() == [0, 1, 2]
    assert [int(x[0, 0, 0]) for x in batch['inputs']] == [1, 3, 5]

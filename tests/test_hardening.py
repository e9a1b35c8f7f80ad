"""Hardening: a matrix of bad inputs, numerical faults, mixed precision,
malicious checkpoints and resume equivalence.

Every bad input must fail with a message that names the offending config key
and the fix; every numerically awkward but legal input (zero-norm features,
soft labels, empty / singleton / single-class batches, bf16/fp16 autocast)
must give finite losses and gradients.

Small random models (1x28x28 inputs, K=6 classes, 32-d teacher) run in this
process; the tool tests (``tools/train.py``, ``tools/dist_train.sh``,
``tools/test.py``) run NCKD on a 242-image Omniglot subset (one drawer per
character) with a randomly initialised teacher checkpoint, a few seconds per
run.
"""
import ast
import io
import json
import os
import pickle
import re
import socket
import subprocess
import sys
import tokenize
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

import mmnckd  # noqa: F401  (registers types and the safe checkpoint globals)
from mmnckd.engine.hooks import TeacherPrototypeHook
from mmnckd.models.heads import ETFHead
from mmnckd.models.losses import (DKDLoss, ETFStructureLoss, KDLoss,
                                  PrototypeAlignLoss)
from mmnckd.utils.safe_load import history_buffer_getattr
from mmpretrain.registry import MODELS

from tool_utils import OMNIGLOT, REPO, evaluate, run, top1

from small_models import D_T, K, NC_STUDENT, TEACHER, classifier

ALL_LOSSES = dict(
    loss_nc1=dict(type='PrototypeAlignLoss', contrast_weight=0.5),
    loss_nc2=dict(type='ETFStructureLoss', momentum=0.9),
    loss_kd=dict(type='KDLoss', tau=4.0),
    loss_dkd=dict(type='DKDLoss', warmup_epochs=0))


def distiller(**kwargs):
    cfg = dict(type='NCKDDistiller', student=NC_STUDENT, teacher=TEACHER,
               distill_losses=dict(ALL_LOSSES))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def batch(labels, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    inputs = torch.randn(len(labels), 1, 28, 28, generator=gen)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, samples


def ready(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    model.set_prototypes(torch.randn(K, D_T, generator=gen))
    return model.train()


def unit_prototypes(seed=0):
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(K, D_T, generator=gen)
    return F.normalize(mu - mu.mean(0), dim=1)


def assert_finite_step(model, losses):
    """All losses finite float32 scalars; backward gives finite grads."""
    for name, value in losses.items():
        assert value.dtype == torch.float32, (name, value.dtype)
        assert torch.isfinite(value).all(), (name, value)
    total, _ = model.parse_losses(losses)
    model.zero_grad()
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, 'no gradient reached the student'
    assert all(torch.isfinite(g).all() for g in grads)


def omniglot_cfg(indices, work_dir):
    """A runner config of one Omniglot image per listed class index
    (``train_drawers=1`` sorts the train split by class: index == class)."""
    data = dict(type='Omniglot', data_root=str(OMNIGLOT), split='train',
                train_drawers=1, indices=list(indices),
                pipeline=[dict(type='PackInputs')])
    loader = dict(batch_size=4, num_workers=0, dataset=data,
                  sampler=dict(type='DefaultSampler', shuffle=True),
                  collate_fn=dict(type='default_collate'))
    return Config(dict(train_dataloader=loader, test_dataloader=loader,
                       work_dir=str(work_dir)))


class FakeRunner:
    """What ``TeacherPrototypeHook`` uses of the Runner; real dataloaders."""

    def __init__(self, cfg, model):
        self.cfg, self.model, self.seed = cfg, model, 0
        self.work_dir = cfg.work_dir
        self.logger = MMLogger.get_instance('test_hardening')
        self.train_dataloader = self.build_dataloader(cfg.train_dataloader)

    @staticmethod
    def build_dataloader(cfg, seed=None):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            return Runner.build_dataloader(cfg, seed=seed)


# ------------------------------------------- 1-3: build-time config errors
def test_class_count_mismatch_names_num_classes():
    teacher = classifier(4, head=dict(type='LinearClsHead',
                                      num_classes=K + 1, in_channels=D_T))
    with pytest.raises(ValueError) as err:
        distiller(teacher=teacher)
    msg = str(err.value)
    assert 'model.teacher.head.num_classes=7' in msg
    assert 'model.student.head.num_classes=6' in msg


def test_projector_output_must_match_teacher_dim():
    with pytest.raises(ValueError) as err:
        distiller(student=classifier(2),
                  projector=dict(type='Projector', in_channels=16,
                                 out_channels=24),
                  distill_losses=dict(
                      loss_nc1=dict(type='PrototypeAlignLoss')))
    msg = str(err.value)
    assert 'model.projector.out_channels is 24' in msg
    assert f'teacher feature dim is {D_T}' in msg
    assert f'out_channels={D_T}' in msg  # the fix, spelled out


def test_etf_head_too_narrow_points_to_a_projector_neck():
    with pytest.raises(ValueError) as err:
        ETFHead(num_classes=K, in_channels=K - 2)
    msg = str(err.value)
    assert 'in_channels=4 < num_classes - 1 = 5' in msg
    assert "neck=dict(type='Projector'" in msg
    # in a distiller config too, at build time
    narrow = classifier(2, head=dict(type='ETFHead', num_classes=K,
                                     in_channels=4),
                        neck=dict(type='Projector', in_channels=16,
                                  out_channels=4))
    with pytest.raises(ValueError, match='in_channels=4 < num_classes - 1'):
        distiller(student=narrow, head_weights='canonical')


# ------------------------------------------------ 4: the teacher checkpoint
def test_teacher_ckpt_missing(tmp_path):
    model = distiller(teacher_ckpt=str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'model.teacher_ckpt=' in msg and 'nope.pth' in msg
    assert 'train the teacher first' in msg


def test_teacher_ckpt_unreadable(tmp_path):
    path = tmp_path / 'junk.pth'
    path.write_bytes(b'this is not a checkpoint')
    model = distiller(teacher_ckpt=str(path))
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
    model = distiller(teacher_ckpt=str(tmp_path / 'other.pth'))
    with pytest.raises(RuntimeError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'does not match model.teacher' in msg
    assert "missing keys ['head.fc.bias'] (1)" in msg
    assert "unexpected keys ['extra.weight'] (1)" in msg
    assert "'backbone.bn1.bias: (8,) vs (4,)'" in msg  # checkpoint vs model
    assert 'Use the config the teacher was trained with' in msg


# ----------------------------------------- 5-7: the teacher prototype pass
def test_class_without_training_sample_names_index_and_name(tmp_path):
    model = distiller()
    runner = FakeRunner(omniglot_cfg([0, 1, 2, 4, 5], tmp_path), model)
    names = runner.train_dataloader.dataset.metainfo['classes']
    with pytest.raises(ValueError) as err:
        TeacherPrototypeHook(progress=False).compute(runner, model)
    msg = str(err.value)
    assert 'No training sample for class index [3]' in msg
    assert repr(names[3]) in msg  # 'Balinese/character04'
    assert 'train_dataloader.dataset' in msg and 'load_from' in msg
    # the control: all six classes present -> prototypes of every class
    runner = FakeRunner(omniglot_cfg(range(K), tmp_path), model)
    means, counts = TeacherPrototypeHook(progress=False).compute(runner,
                                                                 model)
    assert counts.tolist() == [1.0] * K and means.shape == (K, D_T)


def test_labels_out_of_range_in_prototype_pass(tmp_path):
    model = distiller()
    runner = FakeRunner(omniglot_cfg(range(K + 1), tmp_path), model)
    with pytest.raises(ValueError) as err:
        TeacherPrototypeHook(progress=False).before_train(runner)
    msg = str(err.value)
    assert 'training label 6 is outside [0, 6)' in msg
    assert 'model.student.head.num_classes' in msg
    assert 'model.teacher.head.num_classes' in msg
    assert not bool(model.prototypes_ready)


@pytest.mark.parametrize('loss', [
    PrototypeAlignLoss(),
    ETFStructureLoss(num_classes=K, feat_dim=D_T),
    DKDLoss(),
], ids=['nc1', 'nc2', 'dkd'])
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
    with pytest.raises(ValueError, match=r'\(N, 6\), got \(4, 7\).*'
                       'num_classes'):
        call(torch.full((4, K + 1), 1.0 / (K + 1)))  # soft labels, wrong K
    assert torch.isfinite(call(torch.tensor([0, 1, 2, K - 1])))


@pytest.mark.parametrize('shape', [(K + 1, D_T), (K, D_T + 8)],
                         ids=['other-dataset', 'other-teacher'])
def test_prototype_file_for_another_dataset_or_teacher(tmp_path, shape):
    path = tmp_path / 'protos.pth'
    torch.save(dict(class_means=torch.randn(*shape)), path)
    model = distiller()
    runner = FakeRunner(omniglot_cfg(range(K), tmp_path), model)
    hook = TeacherPrototypeHook(load_from=str(path))
    with pytest.raises(ValueError) as err:
        hook.before_train(runner)
    msg = str(err.value)
    assert 'TeacherPrototypeHook.load_from=' in msg
    assert f'shape {shape}' in msg and f'needs {(K, D_T)}' in msg
    assert 'Remove load_from to recompute them' in msg
    assert not bool(model.prototypes_ready)
    # and a file that is no prototype file at all
    torch.save(dict(state_dict={}), path)
    with pytest.raises(ValueError, match='is not a prototype file'):
        hook.before_train(runner)


# ------------------------------------------------- 8: zero-norm features
def test_zero_norm_student_features_losses_and_head_finite():
    labels = torch.tensor([0, 1, 2, 2, 5, 5])
    protos = unit_prototypes()
    losses = [PrototypeAlignLoss(contrast_weight=1.0),
              ETFStructureLoss(num_classes=K, feat_dim=D_T, momentum=0.0),
              ETFStructureLoss(num_classes=K, feat_dim=D_T, target='etf')]
    for loss in losses:
        for z in (torch.zeros(6, D_T), torch.randn(6, D_T) * (labels == 2)
                  [:, None]):  # all zero / some rows zero
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


@pytest.mark.parametrize('head_weights', ['teacher', 'nearest_etf'])
def test_zero_norm_teacher_features_full_step_finite(head_weights):
    """A dead teacher (all features zero): zero prototypes, zero head
    weights; every loss and gradient stays finite."""
    model = distiller(head_weights=head_weights, kd_target='prototype_cosine')
    model.set_prototypes(torch.zeros(K, D_T))
    assert torch.equal(model.prototypes, torch.zeros(K, D_T))
    assert torch.isfinite(model.student.head.weight).all()

    def dead(inputs, stage='neck'):
        return (torch.zeros(inputs.shape[0], D_T), )

    model.teacher.extract_feat = dead
    model.train()
    inputs, samples = batch([0, 1, 2, 3, 4, 5, 0, 1])
    assert_finite_step(model, model(inputs, samples, mode='loss'))


# ------------------------------------------ 9: Mixup / CutMix soft labels
def _mix_preprocessor():
    return dict(type='ClsDataPreprocessor', num_classes=K,
                batch_augments=dict(augments=[
                    dict(type='Mixup', alpha=1.0),
                    dict(type='CutMix', alpha=1.0)]))


@pytest.mark.parametrize('route', ['distiller', 'student_train_cfg'])
def test_mixup_cutmix_soft_labels_through_a_full_step(route):
    if route == 'distiller':  # model.data_preprocessor.batch_augments
        model = distiller(data_preprocessor=_mix_preprocessor())
    else:  # mmpretrain's own route: the student's train_cfg.augments
        student = dict(NC_STUDENT, train_cfg=dict(augments=[
            dict(type='Mixup', alpha=1.0), dict(type='CutMix', alpha=1.0)]),
            data_preprocessor=dict(type='ClsDataPreprocessor',
                                   num_classes=K))
        model = distiller(student=student)
    ready(model)
    torch.manual_seed(0)
    for step in range(4):  # both augments get drawn
        inputs, samples = batch([0, 1, 2, 3, 4, 5, 0, 1], seed=step)
        data = model.data_preprocessor(
            dict(inputs=inputs, data_samples=samples), training=True)
        scores = torch.stack([s.gt_score for s in data['data_samples']])
        assert scores.shape == (8, K)
        assert torch.allclose(scores.sum(1), torch.ones(8))
        assert (scores.max(1).values < 1).any()  # really mixed
        assert_finite_step(model, model(**data, mode='loss'))
    # the NC2 memory was fed by the soft class weights
    assert model.distill_losses.loss_nc2.memory_valid.all()


# ------------------------------------------- 10: NC2 batch-composition edges
@pytest.mark.parametrize('momentum', [0.0, 0.9])
def test_nc2_empty_singleton_and_single_class_batches(momentum):
    loss = ETFStructureLoss(num_classes=K, feat_dim=D_T, momentum=momentum)
    protos = unit_prototypes()
    cases = {
        'empty classes 3-5': [0, 0, 1, 1, 2, 2],
        'one-sample class': [0, 0, 0, 1, 2, 2],
        'single class': [4, 4, 4, 4],
        'single sample': [5],
    }
    for name, labels in cases.items():
        z = torch.randn(len(labels), D_T, requires_grad=True)
        value = loss(z, torch.tensor(labels), protos)
        value.backward()
        assert torch.isfinite(value), name
        assert torch.isfinite(z.grad).all(), name
    if momentum == 0:  # batch only: one class present -> 0, still a graph
        z = torch.randn(3, D_T, requires_grad=True)
        value = loss(z, torch.tensor([4, 4, 4]), protos)
        assert value.item() == 0.0 and value.requires_grad
    else:  # the memory makes the single-class batch informative
        z = torch.randn(3, D_T, requires_grad=True)
        value = loss(z, torch.tensor([4, 4, 4]), protos)
        value.backward()
        assert value.item() > 0 and z.grad.abs().sum() > 0
    # the whole distiller on a single-class batch
    model = ready(distiller(distill_losses=dict(loss_nc2=dict(
        type='ETFStructureLoss', momentum=momentum))))
    inputs, samples = batch([3, 3, 3, 3])
    assert_finite_step(model, model(inputs, samples, mode='loss'))


# --------------------------------------------------------- 11: autocast
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
    model = ready(distiller())
    inputs, samples = batch([0, 1, 2, 3, 4, 5, 0, 1])
    with torch.autocast('cpu', dtype=dtype):
        losses = model(inputs, samples, mode='loss')
        feats = model.student.extract_feat(inputs)
        logits = model.student.head(feats)
    assert feats[-1].dtype == dtype  # the network ran in low precision
    assert logits.dtype == torch.float32  # the cosine did not
    head = model.student.head
    expected = head.scale * (F.normalize(feats[-1].float(), dim=1)
                             @ F.normalize(head.weight.float(), dim=1).T)
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-6)
    assert_finite_step(model, losses)  # float32 losses, finite gradients
    for loss in (PrototypeAlignLoss(), KDLoss()):
        with torch.autocast('cpu', dtype=dtype):
            x = torch.randn(4, D_T).to(dtype)
            value = (loss(x, torch.tensor([0, 1, 2, 3]), unit_prototypes())
                     if isinstance(loss, PrototypeAlignLoss) else
                     loss(torch.randn(4, K).to(dtype), torch.randn(4, K)))
        assert value.dtype == torch.float32 and torch.isfinite(value)


# ------------------------------------------------ 13: malicious checkpoints
class _Reduce:
    """Pickles as ``func(*args)``; nests (func may itself be a _Reduce)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __call__(self, *args):  # only so that pickle accepts it as func
        raise AssertionError('never called')

    def __reduce__(self):
        return self.func, self.args


def _os_system_ckpt(path, marker):
    class Evil:
        def __reduce__(self):
            return os.system, (f'echo pwned > {marker}', )

    torch.save(dict(state_dict={}, meta=Evil()), path)


def _getattr_chain_ckpt(path, marker):
    """``getattr`` + an allow-listed class reach ``os.system``:
    HistoryBuffer.__init__.__globals__['__builtins__']['__import__']('os')
    .system(cmd). Refused only because ``builtins.getattr`` maps to the
    restricted ``history_buffer_getattr``."""
    from mmengine.logging.history_buffer import HistoryBuffer
    init = _Reduce(getattr, HistoryBuffer, '__init__')
    globs = _Reduce(getattr, init, '__globals__')
    builtins = _Reduce(_Reduce(getattr, globs, 'get'), '__builtins__')
    imp = _Reduce(_Reduce(getattr, builtins, 'get'), '__import__')
    system = _Reduce(getattr, _Reduce(imp, 'os'), 'system')
    torch.save(dict(state_dict={}, meta=_Reduce(system, f'echo pwned > '
                                                f'{marker}')), path)


@pytest.fixture(params=['os_system', 'getattr_chain'])
def evil_ckpt(request, tmp_path):
    marker = tmp_path / 'pwned.txt'
    path = tmp_path / f'{request.param}.pth'
    make = _os_system_ckpt if request.param == 'os_system' \
        else _getattr_chain_ckpt
    make(path, marker)
    # control: the payload is live under an unrestricted unpickler
    control = tmp_path / 'control.txt'
    make(tmp_path / 'control.pth', control)
    with zipfile.ZipFile(tmp_path / 'control.pth') as zf:
        data = zf.read(next(n for n in zf.namelist()
                            if n.endswith('data.pkl')))
    pickle.loads(data)
    assert control.read_text().strip() == 'pwned'
    reason = (r'GLOBAL (posix|nt|os)\.system'
              if request.param == 'os_system' else
              r"Refusing getattr\(<class '.*HistoryBuffer'>, '__init__'\)")
    return path, marker, reason


def test_malicious_checkpoint_refused_in_process(evil_ckpt):
    path, marker, reason = evil_ckpt
    from mmengine.runner import load_checkpoint
    with pytest.raises(pickle.UnpicklingError, match=reason):
        torch.load(path)  # torch's default: weights_only=True
    with pytest.raises(pickle.UnpicklingError, match=reason):
        load_checkpoint(MODELS.build(TEACHER), str(path), map_location='cpu')
    model = distiller(teacher_ckpt=str(path))
    with pytest.raises(RuntimeError, match=reason) as err:
        model.init_weights()
    assert 'model.teacher_ckpt=' in str(err.value)
    assert 'weights_only=True' in str(err.value)
    assert not marker.exists()


def test_malicious_checkpoint_refused_by_tools_test(evil_ckpt):
    path, marker, reason = evil_ckpt
    proc = subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/nckd/nckd_r18w32_r18w8_omniglot.py', str(path),
         '--work-dir', str(path.parent / 'work')],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'Weights only load failed' in proc.stderr
    assert re.search(reason, proc.stderr), proc.stderr[-2000:]
    assert not marker.exists()


def test_restricted_getattr_allows_only_history_buffer_statistics():
    from mmengine.logging.history_buffer import HistoryBuffer
    for name in ('min', 'max', 'mean', 'current'):
        assert history_buffer_getattr(HistoryBuffer, name) is getattr(
            HistoryBuffer, name)
    for obj, name in ((HistoryBuffer, '__init__'), (HistoryBuffer, 'update'),
                      (HistoryBuffer, '__class__'), (os, 'system'),
                      (torch.Tensor, 'mean'), (dict, 'get')):
        with pytest.raises(pickle.UnpicklingError, match='Refusing getattr'):
            history_buffer_getattr(obj, name)
    # a real message-hub checkpoint still loads with weights_only=True
    hub = HistoryBuffer()
    hub.update(1.5)
    buf = torch.load(_save_tmp(dict(hub=hub, stat=HistoryBuffer.mean)))
    assert buf['hub'].current() == 1.5 and buf['stat'] is HistoryBuffer.mean


def _save_tmp(obj):
    stream = io.BytesIO()
    torch.save(obj, stream)
    stream.seek(0)
    return stream


def test_no_weights_only_false_in_package_or_tools():
    """No code under mmnckd/ or tools/ opts out of ``weights_only`` loading:
    no ``weights_only=False`` in code (docstrings that *say* so are fine),
    every ``weights_only=`` keyword is the constant True, and no switch of
    torch's environment variable that forces unsafe loading."""
    offenders = []
    for folder in ('mmnckd', 'tools'):
        for path in sorted((REPO / folder).rglob('*')):
            if not path.is_file() or path.suffix not in ('.py', '.sh'):
                continue
            text = path.read_text(errors='replace')
            rel = str(path.relative_to(REPO))
            if 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' in text:
                offenders.append(rel + ': TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
            if path.suffix == '.sh':
                if 'weights_only=False' in text.replace(' ', ''):
                    offenders.append(rel)
                continue
            code = ''.join(
                tok.string for tok in tokenize.generate_tokens(
                    io.StringIO(text).readline)
                if tok.type not in (tokenize.STRING, tokenize.COMMENT))
            if 'weights_only=False' in code.replace(' ', ''):
                offenders.append(rel)
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.keyword) and \
                        node.arg == 'weights_only' and not (
                            isinstance(node.value, ast.Constant)
                            and node.value.value is True):
                    offenders.append(f'{rel}:{node.lineno}')
    assert not offenders, offenders


# ------------------------------------ 12 + 14: tools on a real NCKD run
RESUME_CFG = '''
_base_ = [{base!r}]
# 242 images (drawer 1 of each character), no random augmentation: see
# test_resume_equivalence for why
train_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    dataset=dict(train_drawers=1, pipeline=[dict(type='PackInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(train_drawers=1, indices=128))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2, val_interval=2)
# an explicit end: a run stopped early keeps the 2-epoch schedule
param_scheduler = dict(T_max=2, end=2)
default_hooks = dict(logger=dict(interval=1))
log_processor = dict(window_size=1)  # log every iteration's own losses
randomness = dict(seed=0, deterministic=True)
model = dict(teacher_ckpt={teacher!r})
custom_hooks = [dict(type='TeacherPrototypeHook'),
                dict(type='RankConsistencyHook')]
'''
COMPARED = ('teacher_class_means', 'prototypes',
            'distill_losses.loss_nc2.memory',
            'distill_losses.loss_nc2.memory_valid')
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


@pytest.fixture(scope='module')
def nckd_cfg(tmp_path_factory):
    """The Omniglot NCKD config with a randomly initialised teacher
    checkpoint (NCKD works with any teacher; no teacher training here)."""
    tmp = tmp_path_factory.mktemp('hardening')
    teacher_cfg = Config.fromfile(REPO / 'configs/teachers/'
                                  'resnet18w32_omniglot.py')
    torch.manual_seed(0)
    teacher = MODELS.build(teacher_cfg.model)
    teacher.init_weights()
    torch.save(dict(state_dict=teacher.state_dict()), tmp / 'teacher.pth')
    cfg = tmp / 'nckd.py'
    cfg.write_text(RESUME_CFG.format(
        base=str(REPO / 'configs/nckd/nckd_r18w32_r18w8_omniglot.py'),
        teacher=str(tmp / 'teacher.pth')))
    return cfg


def train_twice(cfg, work, launch):
    """(A) 2 epochs straight; (B) 1 epoch, then ``--resume`` to 2."""
    out_a = launch(cfg, work / 'A')
    launch(cfg, work / 'B', '--cfg-options', 'train_cfg.max_epochs=1')
    out_b = launch(cfg, work / 'B', '--resume')
    return out_a, out_b


def single(cfg, work_dir, *args):
    return run([sys.executable, 'tools/train.py', str(cfg), '--work-dir',
                str(work_dir), *args], env=ENV)


def two_procs(cfg, work_dir, *args):
    return run(['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir',
                str(work_dir), *args], env=dict(ENV, PORT=free_port()))


@pytest.fixture(scope='module')
def single_runs(nckd_cfg, tmp_path_factory):
    work = tmp_path_factory.mktemp('single')
    return (work, ) + train_twice(nckd_cfg, work, single)


def epoch_losses(work_dir, epoch, iters_per_epoch):
    """The per-iteration losses logged in ``epoch`` (every run's
    ``vis_data/scalars.json`` under ``work_dir``), keyed by global step."""
    found = {}
    for path in Path(work_dir).glob('*/vis_data/scalars.json'):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if 'loss' in rec and rec.get('epoch') == epoch:
                found[rec['step']] = {k: v for k, v in rec.items()
                                      if 'loss' in k}
    assert sorted(found) == list(range((epoch - 1) * iters_per_epoch + 1,
                                       epoch * iters_per_epoch + 1)), found
    return found


def assert_equivalent(work, out_b, iters_per_epoch):
    assert 'resumed epoch: 1' in out_b
    assert 'restored from the checkpoint; not recomputed' in out_b
    assert 'Computing teacher prototypes' not in out_b
    a = torch.load(work / 'A' / 'epoch_2.pth')
    b = torch.load(work / 'B' / 'epoch_2.pth')
    sa, sb = a['state_dict'], b['state_dict']
    assert sa.keys() == sb.keys()
    assert bool(sa['distill_losses.loss_nc2.memory_valid'].all())
    for key in COMPARED + tuple(k for k in sa if k.startswith('student.')):
        torch.testing.assert_close(sb[key], sa[key], rtol=1e-5, atol=1e-6,
                                   msg=key)
    for key in COMPARED:  # same ops in the same order: bitwise
        assert torch.equal(sb[key], sa[key]), key
    la = epoch_losses(work / 'A', 2, iters_per_epoch)
    lb = epoch_losses(work / 'B', 2, iters_per_epoch)
    for step in la:
        assert la[step].keys() == lb[step].keys()
        for name, value in la[step].items():
            assert lb[step][name] == pytest.approx(value, rel=1e-5,
                                                   abs=1e-6), (step, name)


def test_resume_equivalence_single_process(single_runs):
    """A resumed run equals an uninterrupted one: prototypes, the NC2
    memory, all student weights and every logged epoch-2 loss.

    How it is done: mmengine checkpoints (and its ``EpochBasedTrainLoop``
    resumes) at epoch boundaries (an iteration checkpoint taken mid-epoch
    restarts that whole epoch), so the interruption is "stop after epoch 1"
    via ``--cfg-options train_cfg.max_epochs=1`` then ``--resume``, which is
    what a killed run resumes from. Two settings make the runs comparable
    and are part of the claim:

    * ``param_scheduler.end`` is explicit: mmengine defaults it to the
      *current* ``max_epochs`` and saves it in the checkpoint, so a run
      started with max_epochs=1 would keep a 1-epoch schedule (a constant
      lr) after resuming to 2.
    * The train pipeline has no random augmentation: transforms such as
      ``RandomCrop`` draw from numpy's global RNG, which mmengine neither
      checkpoints nor re-seeds per epoch with ``num_workers=0``.

    Shuffling is restored by ``DefaultSampler`` (seed + epoch). Tolerance:
    the same deterministic CPU ops run in the same order with one thread
    (``OMP_NUM_THREADS=1``), so the results are expected to be bitwise
    equal; the prototypes and NC2 memory are checked bitwise, the weights
    and losses to 1e-5 relative (float32 round-off of a logged value) so a
    platform with a different but still deterministic kernel choice passes.
    """
    work, _, out_b = single_runs
    assert_equivalent(work, out_b, iters_per_epoch=8)  # 242 / 32


def test_resume_equivalence_two_processes(nckd_cfg, tmp_path):
    """The same on 2 processes (gloo) with ``RankConsistencyHook``: each
    rank sees 121 images (4 batches), the prototypes are all-reduced and the
    NC2 memory is all-reduced in every step, so ranks stay identical."""
    out_a, out_b = train_twice(nckd_cfg, tmp_path, two_procs)
    for out in (out_a, out_b):
        assert 'Model state identical on 2 ranks' in out
        assert 'Model state differs' not in out
    assert_equivalent(tmp_path, out_b, iters_per_epoch=4)


@pytest.fixture(scope='module')
def exported(single_runs, nckd_cfg, tmp_path_factory):
    work = single_runs[0]
    out = tmp_path_factory.mktemp('export')
    run([sys.executable, 'tools/model_converters/export_student.py',
         str(nckd_cfg), str(work / 'A' / 'epoch_2.pth'), str(out)], env=ENV)
    return out / 'nckd_student.py', out / 'nckd_student.pth'


def test_tools_test_matching_config_and_checkpoint(single_runs, nckd_cfg,
                                                   exported, tmp_path):
    ckpt = single_runs[0] / 'A' / 'epoch_2.pth'
    distilled = top1(evaluate(nckd_cfg, ckpt, '--work-dir',
                              str(tmp_path / 'a')))
    student = top1(evaluate(*exported, '--work-dir', str(tmp_path / 'b')))
    assert student == pytest.approx(distilled, abs=1e-6)


def test_tools_test_mismatched_config_says_which_to_use(single_runs,
                                                        nckd_cfg, exported,
                                                        tmp_path):
    """mmengine loads non-strictly: without a check these pairs evaluated
    a randomly initialised model with only a warning."""
    distiller_ckpt = single_runs[0] / 'A' / 'epoch_2.pth'
    student_cfg, student_ckpt = exported
    for cfg, ckpt, expect in (
            (student_cfg, distiller_ckpt,
             ['is a distiller checkpoint', "model.type='ImageClassifier'",
              'export_student.py', 'distiller config']),
            (nckd_cfg, student_ckpt,
             ['holds no "student." weights', "model.type='NCKDDistiller'",
              '<name>_student.py', 'distiller checkpoint'])):
        proc = subprocess.run(
            [sys.executable, 'tools/test.py', str(cfg), str(ckpt),
             '--work-dir', str(tmp_path)], cwd=REPO, capture_output=True,
            text=True, timeout=300, env=dict(os.environ, **ENV))
        assert proc.returncode != 0
        for text in expect:
            assert text in proc.stderr, (text, proc.stderr[-2000:])
        assert 'accuracy/top1' not in proc.stdout + proc.stderr

"""CRD, SimKD and NCKD on top of each, from their Omniglot configs, on a
subset of the real training set: one optimizer step in-process each (data
pipeline, sample_idx, optimizer constructor, losses); the exported SimKD
student (export_student.py) predicts through the teacher's classifier, and
its documented parameter count; the CRD memory on 2 processes
(tools/dist_train.sh, gloo) stays identical on both ranks; the init-head
NCKD config starts its learnable head at the prototypes and trains it."""
import re

import pytest
import torch
from dist_utils import free_port
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from tool_utils import REPO, load_tool, run, write_config

import mmnckd  # noqa: F401

CONFIGS = {
    'crd':
    'configs/crd/crd_resnet18w32_resnet18w8_1xb64_omniglot.py',
    'crd_nckd':
    'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64-crd_omniglot.py',
    'simkd':
    'configs/simkd/simkd_resnet18w32_resnet18w8_1xb64_omniglot.py',
    'simkd_nckd':
    'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64-simkd_omniglot.py',
}
SUBSET = 32  # the first 32 training images (3 characters)


def build(method, teacher_ckpt, omniglot_root):
    """The config's distiller (teacher loaded), optimizer and a loader of
    the training subset."""
    cfg = Config.fromfile(REPO / CONFIGS.get(method, method))
    cfg.model.teacher_ckpt = str(teacher_ckpt)
    if 'crd' in method:  # the memory has one row per training sample
        cfg.model.distill_losses.loss_crd.num_samples = SUBSET
    loader_cfg = cfg.train_dataloader
    loader_cfg.update(batch_size=16, num_workers=0, persistent_workers=False)
    loader_cfg.dataset.update(data_root=omniglot_root, indices=SUBSET)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        loader = Runner.build_dataloader(loader_cfg)
    if hasattr(model, 'set_prototypes'):  # TeacherPrototypeHook's job
        model.set_prototypes(torch.randn(242, model.teacher_feat_dim))
    return model, optim, loader


@pytest.mark.parametrize('method', sorted(CONFIGS))
def test_one_training_step_on_omniglot(method, teacher_ckpt, omniglot_root):
    model, optim, loader = build(method, teacher_ckpt, omniglot_root)
    batch = next(iter(loader))
    idx = [s.sample_idx for s in batch['data_samples']]
    assert len(idx) == 16 and max(idx) < SUBSET
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log_vars = model.train().train_step(batch, optim)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    expected = {
        'crd': {'distill.loss_crd'},
        'simkd': {'distill.loss_simkd'},
    }[method.split('_')[0]]
    if method.endswith('nckd'):
        expected |= {'distill.loss_nc1', 'distill.loss_nc2'}
    assert expected <= set(log_vars)
    after = model.state_dict()
    conv = 'student.backbone.conv1.weight'
    assert not torch.equal(before[conv], after[conv])  # the step happened
    if 'crd' in method:
        prefix = 'distill_losses.loss_crd.'
        for bank in ('memory.student', 'memory.teacher'):
            moved = (after[prefix + bank] != before[prefix + bank]).any(1)
            assert moved.nonzero().flatten().tolist() == sorted(idx)
        assert (after[prefix + 'normaliser'] > 0).all()
        assert not torch.equal(before[prefix + 'embed_t.weight'],
                               after[prefix + 'embed_t.weight'])
    else:  # the reused teacher classifier did not move
        for key in ('student.head.fc.weight', 'student.head.fc.bias'):
            assert torch.equal(before[key], after[key])
        assert torch.equal(after['student.head.fc.weight'],
                           model.teacher.head.fc.weight)


def test_init_head_config_starts_at_the_prototypes_and_trains_the_head(
        teacher_ckpt, omniglot_root):
    """``head_init='prototypes'``: the learnable head is a P after the
    prototypes are set (a = sqrt(2) ln 241 / 16 = 0.48479) and moves in the
    first real step, unlike SimKD's reused classifier."""
    model, optim, loader = build(
        'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64-init-head_omniglot.py',
        teacher_ckpt, omniglot_root)
    fc = model.student.head.fc
    torch.testing.assert_close(
        fc.weight, 0.48479 * model.prototypes, atol=1e-5, rtol=0)
    before = fc.weight.detach().clone()
    log_vars = model.train().train_step(next(iter(loader)), optim)
    assert {'distill.loss_nc1', 'distill.loss_nc2',
            'distill.loss_kd'} <= set(log_vars)
    assert not torch.equal(before, fc.weight)
    assert bool(model.head_initialised)


def test_exported_simkd_student_predicts_through_the_teacher_classifier(
        teacher_ckpt, omniglot_root, tmp_path):
    model, optim, loader = build('simkd', teacher_ckpt, omniglot_root)
    model.train().train_step(next(iter(loader)), optim)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    export = load_tool('tools/model_converters/export_student.py')
    cfg_path, ckpt_path = export.export_student(
        str(REPO / CONFIGS['simkd']), str(ckpt), str(tmp_path / 'out'))
    exported = Config.fromfile(cfg_path).model
    assert exported.type == 'ImageClassifier'
    assert exported.neck.type == 'SimKDNeck'
    assert exported.head.type == 'FrozenLinearClsHead'
    student = MODELS.build(exported)
    state = torch.load(ckpt_path, weights_only=True)['state_dict']
    student.load_state_dict(state, strict=True)
    torch.testing.assert_close(student.head.fc.weight,
                               model.teacher.head.fc.weight)
    student.eval()
    model.eval()
    inputs = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        logits = student(inputs, mode='tensor')
        feats = student.neck(student.backbone(inputs))[0]
        torch.testing.assert_close(logits, model.teacher.head.fc(feats))
        torch.testing.assert_close(logits, model(inputs, mode='tensor'))
        preds = student.predict(inputs, [DataSample() for _ in range(4)])
    assert [int(p.pred_label) for p in preds] == logits.argmax(1).tolist()


def test_exported_simkd_parameter_count_is_documented():
    """backbone + projector + reused head, as the config and
    configs/nckd/README.md state."""
    student = MODELS.build(
        Config.fromfile(REPO / CONFIGS['simkd']).model.student)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert count(student.neck) == 189440  # 64 -> 128 -> 128 -> 256
    assert count(student.head) == 62194  # 256 x 242 + 242, frozen
    assert count(student.backbone) == 175688
    assert count(student) == 427322
    text = (REPO / CONFIGS['simkd']).read_text()
    assert '189,440-parameter projector' in text
    assert '62,194-parameter reused head' in text
    readme = (REPO / 'configs/nckd/README.md').read_text()
    line = next(ln for ln in readme.splitlines()
                if 'simkd_resnet18w32_resnet18w8_1xb64_omniglot.py' in ln)
    numbers = {
        int(n.replace(',', ''))
        for n in re.findall(r'\d[\d,]{4,}', line)
    }
    assert {427322, 189440, 62194} <= numbers


@pytest.mark.slow
def test_crd_memory_identical_on_two_processes(teacher_ckpt, omniglot_root,
                                               tmp_path):
    """64 training images over 2 CPU processes, 16 per batch: 2 steps per
    rank; RankConsistencyHook compares every state tensor of the ranks
    (the CRD memory and its constants included)."""
    cfg = write_config(
        tmp_path / 'crd.py',
        CONFIGS['crd'],
        extra=f'''
model = dict(
    teacher_ckpt={str(teacher_ckpt)!r},
    distill_losses=dict(loss_crd=dict(num_samples=64, num_negatives=256)))
train_dataloader = dict(
    batch_size=16, dataset=dict(data_root={omniglot_root!r}, indices=64))
train_cfg = dict(max_epochs=1, val_interval=2)  # no validation
default_hooks = dict(logger=dict(interval=1))
custom_hooks = [dict(type='RankConsistencyHook')]
''')
    out = run([
        'bash', 'tools/dist_train.sh',
        str(cfg), '2', '--work-dir',
        str(tmp_path / 'work')
    ],
              env={
                  'PORT': str(free_port()),
                  'OMP_NUM_THREADS': '1'
              })
    assert 'Epoch(train) [1][2/2]' in out
    assert 'Model state identical on 2 ranks' in out
    state = torch.load(
        tmp_path / 'work' / 'epoch_1.pth', weights_only=True)['state_dict']
    memory = state['distill_losses.loss_crd.memory.student']
    # every one of the 64 rows was updated once (unit norm): the ranks'
    # batches were gathered
    torch.testing.assert_close(memory.norm(dim=1), torch.ones(64))
    assert (state['distill_losses.loss_crd.normaliser'] > 0).all()

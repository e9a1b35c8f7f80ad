"""TeacherPrototypeHook: its errors (a class without a sample, labels out of
range, a prototype file of another dataset or teacher) on real Omniglot
dataloaders in process; through tools/train.py, prototypes equal to the
teacher class means computed directly, restored on resume."""
import shutil

import pytest
import torch
from dist_utils import free_port
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from small_models import D_T, K, all_losses_distiller
from tool_utils import OMNIGLOT, REPO, nckd_config, run, train

import mmnckd  # noqa: F401
from mmnckd.engine.hooks import TeacherPrototypeHook


def omniglot_cfg(indices, work_dir):
    """A runner config of one Omniglot image per listed class index
    (``train_drawers=1`` sorts the train split by class: index == class)."""
    data = dict(
        type='Omniglot',
        data_root=str(OMNIGLOT),
        split='train',
        train_drawers=1,
        indices=list(indices),
        pipeline=[dict(type='PackInputs')])
    loader = dict(
        batch_size=4,
        num_workers=0,
        dataset=data,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'))
    return Config(
        dict(
            train_dataloader=loader,
            test_dataloader=loader,
            work_dir=str(work_dir)))


class FakeRunner:
    """What ``TeacherPrototypeHook`` uses of the Runner; real dataloaders."""

    def __init__(self, cfg, model):
        self.cfg, self.model, self.seed = cfg, model, 0
        self.work_dir = cfg.work_dir
        self.logger = MMLogger.get_instance('test_teacher_prototype_hook')
        self.train_dataloader = self.build_dataloader(cfg.train_dataloader)

    @staticmethod
    def build_dataloader(cfg, seed=None):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            return Runner.build_dataloader(cfg, seed=seed)


def test_class_without_training_sample_names_index_and_name(tmp_path):
    model = all_losses_distiller()
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
    means, counts = TeacherPrototypeHook(progress=False).compute(runner, model)
    assert counts.tolist() == [1.0] * K and means.shape == (K, D_T)


def test_labels_out_of_range_in_prototype_pass(tmp_path):
    model = all_losses_distiller()
    runner = FakeRunner(omniglot_cfg(range(K + 1), tmp_path), model)
    with pytest.raises(ValueError) as err:
        TeacherPrototypeHook(progress=False).before_train(runner)
    msg = str(err.value)
    assert 'training label 6 is outside [0, 6)' in msg
    assert 'model.student.head.num_classes' in msg
    assert 'model.teacher.head.num_classes' in msg
    assert not bool(model.prototypes_ready)


@pytest.mark.parametrize(
    'shape', [(K + 1, D_T), (K, D_T + 8)],
    ids=['other-dataset', 'other-teacher'])
def test_prototype_file_for_another_dataset_or_teacher(tmp_path, shape):
    path = tmp_path / 'protos.pth'
    torch.save(dict(class_means=torch.randn(*shape)), path)
    model = all_losses_distiller()
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


# ------------------------------------- batches of 1 for a BatchNorm projector
def _passes(monkeypatch):
    """Replace the prototype pass by a stub; returns the list of its calls
    (the check under test must fail before the pass, or let it run)."""
    calls = []

    def compute(self, runner, model):
        calls.append(len(runner.train_dataloader.dataset))
        return torch.randn(K, D_T), torch.ones(K)

    monkeypatch.setattr(TeacherPrototypeHook, 'compute', compute)
    return calls


def _runner(tmp_path,
            n,
            batch_size,
            drop_last=False,
            ranks=1,
            round_up=True,
            monkeypatch=None):
    """A FakeRunner over ``n`` Omniglot images of the 6 classes, its
    DefaultSampler built as the last rank of ``ranks``."""
    cfg = omniglot_cfg([i % K for i in range(n)], tmp_path)
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_dataloader.drop_last = drop_last
    cfg.train_dataloader.sampler.round_up = round_up
    if ranks > 1:
        import mmengine.dataset.sampler as sampler_module
        monkeypatch.setattr(sampler_module, 'get_dist_info', lambda:
                            (ranks - 1, ranks))
    return FakeRunner(cfg, all_losses_distiller())


def test_batch_size_one_fails_before_the_prototype_pass(tmp_path, monkeypatch):
    calls = _passes(monkeypatch)
    runner = _runner(tmp_path, 6, batch_size=1)
    with pytest.raises(ValueError) as err:
        TeacherPrototypeHook(save_to=None).before_train(runner)
    msg = str(err.value)
    assert 'batch of 1 sample (train_dataloader.batch_size=1)' in msg
    assert 'model.student.neck (proj.1: BatchNorm1d, proj.4: ' \
        'BatchNorm1d)' in msg
    assert 'train_dataloader.batch_size >= 2' in msg
    assert 'train_dataloader.drop_last=True' in msg
    assert calls == [] and not bool(runner.model.prototypes_ready)


@pytest.mark.parametrize('drop_last', [False, True])
def test_last_batch_of_one_sample(tmp_path, monkeypatch, drop_last):
    """7 samples, batch size 3: the last batch has 1 sample unless
    drop_last=True."""
    calls = _passes(monkeypatch)
    runner = _runner(tmp_path, 7, batch_size=3, drop_last=drop_last)
    hook = TeacherPrototypeHook(save_to=None)
    if drop_last:
        hook.before_train(runner)  # the check passes, the pass runs
        assert calls == [7] and bool(runner.model.prototypes_ready)
        return
    with pytest.raises(ValueError) as err:
        hook.before_train(runner)
    msg = str(err.value)
    assert ('train_dataloader.batch_size=3 with drop_last=False: the 7 '
            'samples per epoch (7 in the dataset) leave a last batch of '
            '7 % 3 = 1 sample') in msg
    assert 'model.student.neck' in msg and 'drop_last=True' in msg
    assert calls == []


@pytest.mark.parametrize('round_up', [False, True])
def test_last_batch_of_one_on_one_of_two_ranks(tmp_path, monkeypatch,
                                               round_up):
    """7 samples on 2 ranks, batch size 3. DefaultSampler(round_up=False):
    4 and 3 samples, so rank 0 ends on a batch of 4 % 3 = 1; this process is
    rank 1, whose own 3 samples are fine, and fails too (every rank must
    fail alike). round_up=True pads to 4 and 4 samples."""
    calls = _passes(monkeypatch)
    runner = _runner(
        tmp_path,
        7,
        batch_size=3,
        ranks=2,
        round_up=round_up,
        monkeypatch=monkeypatch)
    with pytest.raises(ValueError) as err:
        TeacherPrototypeHook(save_to=None).before_train(runner)
    assert ('the 4 samples per epoch on rank 0 (7 in the dataset) leave a '
            'last batch of 4 % 3 = 1 sample') in str(err.value)
    assert calls == []
    # batch size 2 leaves 0 or 1 (round_up=False: 3 samples on rank 1)
    runner = _runner(
        tmp_path,
        7,
        batch_size=2,
        ranks=2,
        round_up=round_up,
        monkeypatch=monkeypatch)
    if round_up:
        TeacherPrototypeHook(save_to=None).before_train(runner)
        assert calls == [7]
    else:
        with pytest.raises(
                ValueError, match='the 3 samples per epoch on '
                'rank 1'):
            TeacherPrototypeHook(save_to=None).before_train(runner)


def direct_class_means(teacher_ckpt, num=None):
    """Teacher class means of the first ``num`` (default: all) training
    images, computed here, without the hook or the runner."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS

    from mmnckd.datasets import Omniglot
    cfg = Config.fromfile(REPO /
                          'configs/teachers/resnet18w32_1xb64_omniglot.py')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(teacher_ckpt), map_location='cpu')
    model.eval()
    ds = Omniglot(
        data_root=str(OMNIGLOT), split='train', pipeline=[], indices=num)
    imgs = torch.stack([
        torch.from_numpy(ds[i]['img'].copy()).permute(2, 0, 1)
        for i in range(len(ds))
    ]).float()
    labels = torch.tensor([ds[i]['gt_label'] for i in range(len(ds))])
    mean, std = cfg.data_preprocessor.mean[0], cfg.data_preprocessor.std[0]
    with torch.no_grad():
        feats = torch.cat([
            model.extract_feat((x - mean) / std, stage='pre_logits')
            for x in imgs.split(512)
        ])
    return torch.stack([feats[labels == k].mean(0) for k in range(242)])


@pytest.mark.slow
def test_prototypes_are_the_teacher_class_means(nckd_run, teacher_ckpt):
    _, work, out = nckd_run
    assert 'Computing teacher prototypes over 3630 training samples' in out
    saved = torch.load(work / 'teacher_prototypes.pth', weights_only=True)
    assert saved['counts'].tolist() == [15.0] * 242
    expected = direct_class_means(teacher_ckpt)
    torch.testing.assert_close(
        saved['class_means'], expected, rtol=1e-4, atol=1e-4)
    ckpt = torch.load(work / 'epoch_1.pth', weights_only=True)['state_dict']
    torch.testing.assert_close(
        ckpt['teacher_class_means'], expected, rtol=1e-4, atol=1e-4)
    assert not any(k.startswith('teacher.') for k in ckpt)
    # the NC3 head holds the teacher prototypes P
    centred = expected - expected.mean(0)
    p = centred / centred.norm(dim=1, keepdim=True)
    torch.testing.assert_close(
        ckpt['student.head.weight'], p, rtol=1e-4, atol=1e-4)
    for key in ('distill.loss_nc1', 'distill.loss_nc2', 'nc/nc1', 'nc/nc2',
                'nc/nc3'):
        assert key in out, key


@pytest.mark.slow
def test_two_process_prototypes_of_an_odd_training_set(teacher_ckpt, tmp_path):
    """3629 samples on 2 ranks: 1815 + 1814, no sample padded or dropped
    (the ranks' samplers pad to 1815 + 1815 for training)."""
    cfg = nckd_config(
        tmp_path / 'cfg.py',
        teacher_ckpt,
        extra='train_dataloader = dict(dataset=dict(indices=3629))\n')
    out = run([
        'bash', 'tools/dist_train.sh',
        str(cfg), '2', '--work-dir',
        str(tmp_path / 'work')
    ],
              env={'PORT': str(free_port())})
    assert 'Computing teacher prototypes over 3629 training samples' in out
    saved = torch.load(
        tmp_path / 'work' / 'teacher_prototypes.pth', weights_only=True)
    # the last image of class 241 is not in the subset
    assert saved['counts'].tolist() == [15.0] * 241 + [14.0]
    torch.testing.assert_close(
        saved['class_means'],
        direct_class_means(teacher_ckpt, 3629),
        rtol=1e-4,
        atol=1e-4)


@pytest.mark.slow
def test_resume_restores_prototypes_without_a_second_pass(
        nckd_run, teacher_ckpt, tmp_path):
    _, work, _ = nckd_run
    # resumed in a copy: nckd_run is shared
    work = shutil.copytree(work, tmp_path / 'work')
    cfg = nckd_config(tmp_path / 'nckd2.py', teacher_ckpt, epochs=2)
    out = train(cfg, work, '--resume', str(work / 'epoch_1.pth'))
    assert 'restored from the checkpoint; not recomputed' in out
    assert 'Computing teacher prototypes' not in out
    assert 'Epoch(train) [2]' in out

"""NCKD end to end on Omniglot through the stock tools: prototypes equal the
class means, identical on 2 processes, restored on resume; the exported
student evaluates to the distiller's top-1."""
import sys

import pytest
import torch

from tool_utils import (OMNIGLOT, REPO, evaluate, run, top1, train,
                        write_config)

NCKD = 'configs/nckd/nckd_r18w32_r18w8_omniglot.py'


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('teacher')
    cfg = write_config(tmp / 'teacher.py',
                       'configs/teachers/resnet18w32_omniglot.py')
    train(cfg, tmp / 'work')
    return tmp / 'work' / 'epoch_1.pth'


def nckd_config(path, teacher_ckpt, epochs=1, extra=''):
    return write_config(
        path, NCKD, epochs=epochs,
        extra=f'model = dict(teacher_ckpt={str(teacher_ckpt)!r})\n' + extra)


@pytest.fixture(scope='module')
def nckd_run(teacher, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('nckd')
    cfg = nckd_config(tmp / 'nckd.py', teacher)
    out = train(cfg, tmp / 'work')
    return cfg, tmp / 'work', out


def direct_class_means(teacher_ckpt):
    """Teacher class means computed here, without the hook or the runner."""
    import mmnckd  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS

    from mmnckd.datasets import Omniglot
    cfg = Config.fromfile(REPO / 'configs/teachers/resnet18w32_omniglot.py')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(teacher_ckpt), map_location='cpu')
    model.eval()
    ds = Omniglot(data_root=str(OMNIGLOT), split='train', pipeline=[])
    imgs = torch.stack([torch.from_numpy(ds[i]['img'].copy()).permute(2, 0, 1)
                        for i in range(len(ds))]).float()
    labels = torch.tensor([ds[i]['gt_label'] for i in range(len(ds))])
    mean, std = cfg.data_preprocessor.mean[0], cfg.data_preprocessor.std[0]
    with torch.no_grad():
        feats = torch.cat([
            model.extract_feat((x - mean) / std, stage='pre_logits')
            for x in imgs.split(512)])
    return torch.stack([feats[labels == k].mean(0) for k in range(242)])


def test_prototypes_are_the_teacher_class_means(nckd_run, teacher):
    _, work, out = nckd_run
    assert 'Computing teacher prototypes over 3630 training samples' in out
    saved = torch.load(work / 'teacher_prototypes.pth', weights_only=True)
    assert saved['counts'].tolist() == [15.0] * 242
    expected = direct_class_means(teacher)
    torch.testing.assert_close(saved['class_means'], expected, rtol=1e-4,
                               atol=1e-4)
    ckpt = torch.load(work / 'epoch_1.pth', weights_only=True)['state_dict']
    torch.testing.assert_close(ckpt['teacher_class_means'], expected,
                               rtol=1e-4, atol=1e-4)
    assert not any(k.startswith('teacher.') for k in ckpt)
    # the NC3 head holds the teacher prototypes P
    centred = expected - expected.mean(0)
    p = centred / centred.norm(dim=1, keepdim=True)
    torch.testing.assert_close(ckpt['student.head.weight'], p, rtol=1e-4,
                               atol=1e-4)
    for key in ('distill.loss_nc1', 'distill.loss_nc2', 'nc/nc1', 'nc/nc2',
                'nc/nc3'):
        assert key in out, key


def test_resume_restores_prototypes_without_a_second_pass(nckd_run, teacher,
                                                          tmp_path):
    _, work, _ = nckd_run
    cfg = nckd_config(tmp_path / 'nckd2.py', teacher, epochs=2)
    out = train(cfg, work, '--resume', str(work / 'epoch_1.pth'))
    assert 'restored from the checkpoint; not recomputed' in out
    assert 'Computing teacher prototypes' not in out
    assert 'Epoch(train) [2]' in out


def test_exported_student_matches_the_distiller(nckd_run, tmp_path):
    cfg, work, _ = nckd_run
    ckpt = work / 'epoch_1.pth'
    distiller_top1 = top1(evaluate(cfg, ckpt))
    run([sys.executable, 'tools/model_converters/export_student.py', str(cfg),
         str(ckpt), str(tmp_path / 'export')])
    student_cfg = tmp_path / 'export' / 'nckd_student.py'
    student_ckpt = tmp_path / 'export' / 'nckd_student.pth'
    state = torch.load(student_ckpt, weights_only=True)['state_dict']
    # a plain classifier's keys only: no teacher, projector or prototypes
    assert {k.split('.')[0] for k in state} == {'backbone', 'neck', 'head'}
    assert 'head.weight' in state and 'head.log_scale' in state
    from mmengine.config import Config
    assert Config.fromfile(student_cfg).model.type == 'ImageClassifier'
    out = evaluate(student_cfg, student_ckpt)
    assert top1(out) == pytest.approx(distiller_top1, abs=1e-6)


def test_two_process_distillation_keeps_ranks_identical(nckd_run, teacher,
                                                        tmp_path):
    cfg = nckd_config(
        tmp_path / 'nckd_dist.py', teacher,
        extra="custom_hooks = [dict(type='TeacherPrototypeHook'), "
        "dict(type='RankConsistencyHook')]\n")
    out = run(['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir',
               str(tmp_path / 'work')], env={'PORT': '29612'})
    # parameters, prototypes, NC2 memory and ETF weight agree on both ranks
    assert 'Model state identical on 2 ranks' in out
    two = torch.load(tmp_path / 'work' / 'teacher_prototypes.pth',
                     weights_only=True)
    _, work, _ = nckd_run
    one = torch.load(work / 'teacher_prototypes.pth', weights_only=True)
    assert two['counts'].tolist() == one['counts'].tolist()
    torch.testing.assert_close(two['class_means'], one['class_means'],
                               rtol=1e-5, atol=1e-5)
    out = evaluate(cfg, tmp_path / 'work' / 'epoch_1.pth')
    assert 'nc/nc1' in out and top1(out) >= 0.0

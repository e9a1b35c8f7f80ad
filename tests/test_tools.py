"""The stock-shaped tools on real data: train, test, resume, 2 processes,
checkpoint loading under ``weights_only=True``."""
import subprocess
import sys

import pytest
import torch

from tool_utils import REPO, run, evaluate, top1, train, write_config

STUDENT = 'configs/teachers/resnet18w8_omniglot_scratch.py'


def test_registry_has_stock_and_mmnckd_types():
    import mmnckd  # noqa: F401
    from mmpretrain.registry import DATASETS, HOOKS, METRICS, MODELS

    for name in ('NCKDDistiller', 'PrototypeAlignLoss', 'ETFStructureLoss',
                 'KDLoss', 'DKDLoss', 'ETFHead', 'Projector'):
        assert MODELS.get(name) is not None, name
    for name in ('TeacherPrototypeHook', 'RankConsistencyHook'):
        assert HOOKS.get(name) is not None, name
    assert METRICS.get('NCMetric') is not None
    for name in ('Omniglot', 'FashionMNISTIDX'):
        assert DATASETS.get(name) is not None, name
    model = MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1,
                           base_channels=8, stem_channels=8),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=5, in_channels=64)))
    assert model(torch.zeros(2, 1, 28, 28), mode='tensor').shape == (2, 5)


@pytest.fixture(scope='module')
def omniglot_run(tmp_path_factory):
    """One epoch of the Omniglot student through tools/train.py."""
    tmp = tmp_path_factory.mktemp('omniglot')
    cfg = write_config(tmp / 'cfg.py', STUDENT)
    out = train(cfg, tmp / 'work')
    return cfg, tmp / 'work', out


def test_train_then_test_omniglot(omniglot_run):
    cfg, work, out = omniglot_run
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    assert 'Epoch(train) [1][50/57]' in out  # 3630 images / 64 per batch
    acc = top1(evaluate(cfg, ckpt))
    assert 0.0 <= acc <= 100.0
    assert acc == pytest.approx(top1(out), abs=1e-3)  # same model, same data


def test_resume_continues_from_checkpoint(omniglot_run, tmp_path):
    cfg, work, _ = omniglot_run
    cfg2 = write_config(tmp_path / 'cfg2.py', STUDENT, epochs=2)
    out = train(cfg2, work, '--resume', str(work / 'epoch_1.pth'))
    assert 'resumed epoch: 1' in out
    assert 'Epoch(train) [1]' not in out and 'Epoch(train) [2]' in out
    assert (work / 'epoch_2.pth').is_file()


def test_checkpoint_loads_weights_only(omniglot_run):
    _, work, _ = omniglot_run
    ckpt = work / 'epoch_1.pth'
    load = ('import torch; ck = torch.load({!r}, weights_only=True); '
            'print(sorted(ck))').format(str(ckpt))
    plain = subprocess.run([sys.executable, '-c', load], capture_output=True,
                           text=True, cwd=REPO)
    assert plain.returncode != 0  # torch alone refuses mmengine's types
    assert 'Weights only load failed' in plain.stderr
    out = run([sys.executable, '-c', 'import mmnckd; ' + load])
    assert "'message_hub'" in out and "'state_dict'" in out


def test_fashion_mnist_train_and_test(tmp_path):
    cfg = write_config(
        tmp_path / 'cfg.py', 'configs/teachers/resnet18w8_fashionmnist_scratch.py',
        extra='''
        train_dataloader = dict(dataset=dict(num_per_class=64))
        val_dataloader = dict(dataset=dict(num_per_class=20))
        test_dataloader = val_dataloader
        ''')
    out = train(cfg, tmp_path / 'work')
    assert 'Epoch(train) [1][5/5]' in out  # 640 images / 128 per batch
    acc = top1(evaluate(cfg, tmp_path / 'work' / 'epoch_1.pth'))
    assert acc > 10.0  # better than chance on 10 classes after 1 epoch


def test_two_process_cpu_training_agrees_across_ranks(tmp_path):
    cfg = write_config(
        tmp_path / 'cfg.py', STUDENT,
        extra="custom_hooks = [dict(type='RankConsistencyHook')]\n")
    out = run(['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir',
               str(tmp_path / 'work')], env={'PORT': '29611'})
    assert 'Model state identical on 2 ranks' in out
    # 3630 samples over 2 ranks at 64 per batch: 29 iterations each
    assert 'Epoch(train) [1][20/29]' in out
    ckpt = tmp_path / 'work' / 'epoch_1.pth'
    assert top1(evaluate(cfg, ckpt)) >= 0.0


def test_nc_metric_on_a_plain_classifier_and_nc_analysis(omniglot_run,
                                                         tmp_path):
    cfg, work, _ = omniglot_run
    ckpt = work / 'epoch_1.pth'
    nc_cfg = write_config(
        tmp_path / 'nc.py', STUDENT, extra='''
        custom_hooks = [dict(type='PreLogitsHook')]
        test_evaluator = [dict(type='Accuracy', topk=(1, 5)),
                          dict(type='NCMetric')]
        ''')
    out = evaluate(nc_cfg, ckpt)
    line = [ln for ln in out.splitlines() if 'nc/nc1:' in ln][-1]
    streamed = {k: float(line.split(f'nc/{k}:')[1].split()[0])
                for k in ('nc1', 'nc2', 'nc3')}
    json_out = tmp_path / 'nc.json'
    run([sys.executable, 'tools/analysis_tools/nc_analysis.py', str(cfg),
         str(ckpt), '--out', str(json_out)])
    import json
    offline = json.loads(json_out.read_text())
    assert offline['top1'] == pytest.approx(top1(out), abs=1e-3)
    assert offline['num_samples'] == 1210
    for k, v in streamed.items():  # the metric and the tool agree
        assert offline[k] == pytest.approx(v, rel=1e-3, abs=1e-4), k

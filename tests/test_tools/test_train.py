"""tools/train.py on real data: train then test, resume, Fashion-MNIST; an
NCKD run stopped after epoch 1 and resumed equals an uninterrupted one (on 2
processes, and killed mid-epoch, in test_random_state_hook.py).

The resume runs train NCKD on a 242-image Omniglot subset (one drawer per
character) with the randomly initialised teacher checkpoint of conftest.py
(``teacher_ckpt``), a few seconds per run."""
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from tool_utils import (ENV, REPO, STUDENT, evaluate, load_tool, run, top1,
                        train, write_config)

pytestmark = pytest.mark.slow


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
    # resumed in a copy: omniglot_run is shared
    work = shutil.copytree(work, tmp_path / 'work')
    cfg2 = write_config(tmp_path / 'cfg2.py', STUDENT, epochs=2)
    out = train(cfg2, work, '--resume', str(work / 'epoch_1.pth'))
    assert 'resumed epoch: 1' in out
    assert 'Epoch(train) [1]' not in out and 'Epoch(train) [2]' in out
    assert (work / 'epoch_2.pth').is_file()


def test_fashion_mnist_train_and_test(tmp_path):
    cfg = write_config(
        tmp_path / 'cfg.py',
        'configs/vanilla/resnet18w8_1xb128_fashion-mnist.py',
        extra='''
        train_dataloader = dict(dataset=dict(num_per_class=64))
        val_dataloader = dict(dataset=dict(num_per_class=20))
        test_dataloader = val_dataloader
        ''')
    out = train(cfg, tmp_path / 'work')
    assert 'Epoch(train) [1][5/5]' in out  # 640 images / 128 per batch
    acc = top1(evaluate(cfg, tmp_path / 'work' / 'epoch_1.pth'))
    assert acc > 10.0  # better than chance on 10 classes after 1 epoch


# ------------------------------------------------ resume equivalence
RESUME_CFG = '''
_base_ = [{base!r}]
# 242 images (drawer 1 of each character), no random augmentation: see
# test_resume_equivalence_single_process for why
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


@pytest.fixture(scope='module')
def nckd_cfg(teacher_ckpt, tmp_path_factory):
    """The Omniglot NCKD config of the resume runs with the shared
    randomly initialised teacher checkpoint."""
    tmp = tmp_path_factory.mktemp('resume')
    cfg = tmp / 'nckd.py'
    cfg.write_text(
        RESUME_CFG.format(
            base=str(
                REPO /
                'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64_omniglot.py'),
            teacher=str(teacher_ckpt)))
    return cfg


def train_twice(cfg, work, launch):
    """(A) 2 epochs straight; (B) 1 epoch, then ``--resume`` to 2."""
    out_a = launch(cfg, work / 'A')
    launch(cfg, work / 'B', '--cfg-options', 'train_cfg.max_epochs=1')
    out_b = launch(cfg, work / 'B', '--resume')
    return out_a, out_b


def single(cfg, work_dir, *args):
    return run([
        sys.executable, 'tools/train.py',
        str(cfg), '--work-dir',
        str(work_dir), *args
    ],
               env=ENV)


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
                found[rec['step']] = {
                    k: v
                    for k, v in rec.items() if 'loss' in k
                }
    assert sorted(found) == list(
        range((epoch - 1) * iters_per_epoch + 1,
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
        torch.testing.assert_close(
            sb[key], sa[key], rtol=1e-5, atol=1e-6, msg=key)
    for key in COMPARED:  # same ops in the same order: bitwise
        assert torch.equal(sb[key], sa[key]), key
    la = epoch_losses(work / 'A', 2, iters_per_epoch)
    lb = epoch_losses(work / 'B', 2, iters_per_epoch)
    for step in la:
        assert la[step].keys() == lb[step].keys()
        for name, value in la[step].items():
            assert lb[step][name] == pytest.approx(
                value, rel=1e-5, abs=1e-6), (step, name)


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


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU supports --amp')
def test_amp_without_gpu_is_a_clear_error(tmp_path):
    from mmengine.config import Config
    train_tool = load_tool('tools/train.py')
    config = 'configs/kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py'
    args = train_tool.parse_args(
        [config, '--amp', '--work-dir',
         str(tmp_path / 'w')])
    with pytest.raises(SystemExit, match='--amp needs a GPU'):
        train_tool.merge_args(Config.fromfile(REPO / config), args)
    assert not (tmp_path / 'w').exists()

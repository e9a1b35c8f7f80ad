"""EpochInfoHook: under an IterBasedTrainLoop the losses' ``epoch`` counts
the passes over the training set, so DKD's warm-up advances (it used to stay
at its first-epoch factor for the whole run); under an epoch-based loop it
is the loop's epoch."""
import pytest
from mmengine.runner import Runner
from small_models import TEACHER, classifier
from test_teacher_prototype_hook import omniglot_cfg

from mmnckd.models.losses import DKDLoss


def _epochs_seen(tmp_path, train_cfg, hooks):
    seen = []

    class Recording(DKDLoss):

        def forward(self, student_logits, teacher_logits, labels, epoch=None):
            seen.append(epoch)
            return super().forward(student_logits, teacher_logits, labels,
                                   epoch)

    cfg = omniglot_cfg(list(range(6)) * 2, tmp_path)  # 12, batches of 4
    runner = Runner(
        model=dict(
            type='SingleTeacherDistiller',
            student=classifier(2),
            teacher=TEACHER,
            distill_losses=dict(loss_dkd=dict(type='DKDLoss'))),
        work_dir=str(tmp_path),
        train_dataloader=cfg.train_dataloader,
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=hooks,
        default_scope='mmpretrain')
    runner.model.distill_losses['loss_dkd'] = Recording(warmup_epochs=3)
    runner.model._loss_args['loss_dkd'] = [
        'student_logits', 'teacher_logits', 'labels', 'epoch'
    ]
    runner.train()
    return seen


def test_iteration_based_loop_counts_passes(tmp_path):
    loop = dict(type='IterBasedTrainLoop', max_iters=8)
    assert _epochs_seen(tmp_path / 'a', loop, [dict(type='EpochInfoHook')]) \
        == [0, 0, 0, 1, 1, 1, 2, 2]
    # without the hook the loop's epoch never moves: the old behaviour
    assert _epochs_seen(tmp_path / 'b', loop, []) == [0] * 8


@pytest.mark.parametrize('hooks', [[dict(type='EpochInfoHook')], []])
def test_epoch_based_loop_keeps_its_epoch(tmp_path, hooks):
    loop = dict(type='EpochBasedTrainLoop', max_epochs=2)
    assert _epochs_seen(tmp_path, loop, hooks) == [0, 0, 0, 1, 1, 1]

"""TeacherPrototypeHook's provenance checks, in process on real Omniglot
dataloaders: restored prototypes of another teacher or class list, restored
NaN values, a prototype file of another teacher, a teacher checkpoint whose
classes are not the training set's; and the distiller's non-finite loss
stop."""
import pytest
import torch
from small_models import (K, all_losses_distiller, labelled_batch,
                          ready_to_train)
from test_teacher_prototype_hook import FakeRunner, omniglot_cfg

from mmnckd.engine.hooks import TeacherPrototypeHook
from mmnckd.utils import names_sha256


def _trained_state(tmp_path):
    """A distiller whose prototypes the hook computed: (model, runner)."""
    model = all_losses_distiller()
    runner = FakeRunner(omniglot_cfg(range(K), tmp_path), model)
    TeacherPrototypeHook(progress=False, save_to=None).before_train(runner)
    return model, runner


def _restored(state, tmp_path, teacher_shift=0.0, classes=None):
    """A fresh distiller with ``state`` loaded as --resume would (teacher
    weights come from teacher_ckpt, so are not in ``state``)."""
    model = all_losses_distiller()
    with torch.no_grad():
        model.teacher.load_state_dict(state['teacher'])
        next(model.teacher.parameters()).add_(teacher_shift)
    model.load_state_dict(state['distiller'], strict=False)
    runner = FakeRunner(omniglot_cfg(range(K), tmp_path), model)
    if classes is not None:
        runner.train_dataloader.dataset._metainfo['classes'] = classes
    return model, runner


def test_prototypes_record_teacher_and_classes(tmp_path):
    model, runner = _trained_state(tmp_path)
    classes = runner.train_dataloader.dataset.metainfo['classes']
    assert model.prototype_provenance == (model.teacher_weights_sha256(),
                                          names_sha256(classes))
    # the digest follows the weights, not the object
    before = model.teacher_weights_sha256()
    with torch.no_grad():
        next(model.teacher.parameters())[0].add_(1e-3)
    assert model.teacher_weights_sha256() != before


@pytest.mark.parametrize('change', ['teacher', 'classes'])
def test_stale_prototypes_refused_or_recomputed(tmp_path, change):
    model, runner = _trained_state(tmp_path)
    state = dict(
        teacher=model.teacher.state_dict(), distiller=model.state_dict())
    classes = list(runner.train_dataloader.dataset.metainfo['classes'])
    kwargs = dict(teacher_shift=0.5) if change == 'teacher' else dict(
        classes=tuple([classes[1], classes[0]] + classes[2:]))
    what = 'teacher weights' if change == 'teacher' else 'class names'

    # control: the same teacher and classes restore without recomputing
    same, same_runner = _restored(state, tmp_path)
    TeacherPrototypeHook(progress=False).before_train(same_runner)
    assert torch.equal(same.prototypes, model.prototypes)

    stale, stale_runner = _restored(state, tmp_path, **kwargs)
    with pytest.raises(ValueError) as err:
        TeacherPrototypeHook(progress=False).before_train(stale_runner)
    assert f'computed for other {what}' in str(err.value)
    assert 'on_stale="recompute"' in str(err.value)

    TeacherPrototypeHook(
        progress=False, on_stale='recompute',
        save_to=None).before_train(stale_runner)
    stale_classes = stale_runner.train_dataloader.dataset.metainfo['classes']
    assert stale.prototype_provenance == (stale.teacher_weights_sha256(),
                                          names_sha256(stale_classes))
    if change == 'teacher':  # another teacher: other prototypes
        assert not torch.allclose(stale.prototypes, model.prototypes)


def test_restored_nan_prototypes_refused(tmp_path):
    """A checkpoint with NaN prototypes used to train an epoch on nan."""
    model, _ = _trained_state(tmp_path)
    state = dict(
        teacher=model.teacher.state_dict(), distiller=model.state_dict())
    state['distiller']['prototypes'][2, 0] = float('nan')
    _, runner = _restored(state, tmp_path)
    with pytest.raises(ValueError) as err:
        TeacherPrototypeHook(progress=False).before_train(runner)
    assert "'prototypes (1 of" in str(err.value)
    assert 'earlier checkpoint' in str(err.value)


def test_prototype_file_of_another_teacher_refused(tmp_path):
    model = all_losses_distiller()
    runner = FakeRunner(omniglot_cfg(range(K), tmp_path), model)
    TeacherPrototypeHook(progress=False).before_train(runner)  # the file
    path = tmp_path / 'teacher_prototypes.pth'
    assert torch.load(path)['teacher_sha256'] == model.teacher_weights_sha256()
    hook = TeacherPrototypeHook(load_from=str(path), progress=False)
    other = all_losses_distiller()  # another random teacher
    with pytest.raises(ValueError, match='computed for other teacher weights'):
        hook.before_train(FakeRunner(runner.cfg, other))
    assert not bool(other.prototypes_ready)
    # the same teacher loads it
    same = all_losses_distiller()
    same.teacher.load_state_dict(model.teacher.state_dict())
    hook.before_train(FakeRunner(runner.cfg, same))
    assert torch.allclose(same.prototypes, model.prototypes)


def test_teacher_classes_checked_by_name_and_order(tmp_path):
    """A dataset whose class 10 was replaced trained without a word."""
    model = all_losses_distiller()
    teacher_path = tmp_path / 'teacher.pth'
    runner = FakeRunner(omniglot_cfg(range(K), tmp_path), model)
    classes = runner.train_dataloader.dataset.metainfo['classes']
    swapped = list(classes)
    swapped[10] = 'Greek/character99'
    torch.save(
        dict(
            state_dict=model.teacher.state_dict(),
            meta=dict(dataset_meta=dict(classes=swapped))), teacher_path)
    model.load_teacher(str(teacher_path))
    assert model.teacher_classes == tuple(swapped)
    with pytest.raises(ValueError) as err:
        TeacherPrototypeHook(progress=False).before_train(runner)
    msg = str(err.value)
    assert "10: 'Greek/character99' (teacher) vs" in msg
    assert 'by name and order' in msg
    assert not bool(model.prototypes_ready)  # stopped before the pass
    # the teacher's own class list passes
    model.check_teacher_classes(swapped)


def test_non_finite_loss_stops_the_step():
    model = ready_to_train(all_losses_distiller())
    inputs, samples = labelled_batch(list(range(K)) * 2)
    losses = model.loss(inputs, samples)  # control: finite
    assert all(torch.isfinite(v).all() for v in losses.values())
    with torch.no_grad():
        model.student.head.weight[1] = float('nan')
    with pytest.raises(FloatingPointError) as err:
        model.loss(inputs, samples)
    assert 'Non-finite loss at epoch' in str(err.value)
    assert "'student.loss'" in str(err.value)

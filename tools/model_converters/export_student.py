"""Export the student of an NCKD distiller as a plain mmpretrain classifier.

    python tools/model_converters/export_student.py CONFIG CHECKPOINT OUT_DIR

writes ``OUT_DIR/<config name>_student.py`` (an ``ImageClassifier`` config:
the distiller config with ``model`` replaced by the student and the
distillation-only hooks removed; a ``PreLogitsHook`` added when the
evaluators use ``NCMetric``) and ``OUT_DIR/<config name>_student.pth``
(``state_dict`` with the ``student.`` prefix stripped; no teacher, projector
or prototype keys). Both work with ``tools/test.py`` and mmpretrain's
inference API (``ImageClassificationInferencer``, ``get_model``).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import MODELS

import mmnckd  # noqa: F401
from mmnckd.engine.fileio import atomic_torch_save
from mmnckd.models.distillers import is_distiller_type
from mmnckd.models.distillers.single_teacher_distiller import resolve_model_cfg
from mmnckd.utils import check_finite, check_state_matches, strip_prefix

DISTILL_ONLY_HOOKS = ('TeacherPrototypeHook', )


def export_student(config: str, checkpoint: str, out_dir: str):
    cfg = Config.fromfile(config)
    if not is_distiller_type(cfg.model.get('type')):
        raise ValueError(f'{config} is not a distiller config (model.type'
                         f'={cfg.model.get("type")!r}): nothing to export.')
    student = resolve_model_cfg(cfg.model.student, 'student')
    cfg.model = student
    hooks = [
        h for h in cfg.get('custom_hooks', [])
        if h.get('type') not in DISTILL_ONLY_HOOKS
    ]
    evaluators = [cfg.get('val_evaluator'), cfg.get('test_evaluator')]
    uses_nc_metric = any(
        e.get('type') == 'NCMetric' for ev in evaluators if ev
        for e in (ev if isinstance(ev, list) else [ev]))
    if uses_nc_metric:  # a plain classifier needs it to feed NCMetric
        hooks.append(dict(type='PreLogitsHook'))
    cfg.custom_hooks = hooks
    name = osp.splitext(osp.basename(config))[0] + '_student'

    # load and check everything before writing anything
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    student_state = strip_prefix(state, 'student.')
    if not student_state:
        raise ValueError(f'{checkpoint} holds no "student." weights: is it a '
                         f'distiller checkpoint?')
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    check_state_matches(
        MODELS.build(student),
        student_state,
        f'The student weights ("student.*") of {checkpoint}',
        f'Export a checkpoint with the distiller config it was trained with '
        f'(work_dir/<config name>.py is a copy of it); nothing was written to '
        f'{out_dir}.',
        ignore=('data_preprocessor.', ))
    check_finite(
        student_state.items(), f'The student of {checkpoint}',
        f'Its training diverged or the file was damaged: export an earlier '
        f'checkpoint of the run; nothing was written to {out_dir}.')
    meta = dict(ckpt.get('meta', {}) or {})
    meta.update(exported_from=osp.abspath(checkpoint))

    os.makedirs(out_dir, exist_ok=True)
    cfg_path = osp.join(out_dir, name + '.py')
    ckpt_path = osp.join(out_dir, name + '.pth')
    atomic_torch_save(dict(meta=meta, state_dict=student_state), ckpt_path)
    cfg.dump(cfg_path)
    return cfg_path, ckpt_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('config', help='the distiller config')
    parser.add_argument('checkpoint', help='a distiller checkpoint')
    parser.add_argument(
        'out_dir', help='where the student config and '
        'checkpoint go')
    args = parser.parse_args()
    cfg_path, ckpt_path = export_student(args.config, args.checkpoint,
                                         args.out_dir)
    print(f'Student config: {cfg_path}\nStudent checkpoint: {ckpt_path}')


if __name__ == '__main__':
    main()

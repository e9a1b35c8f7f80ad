"""Test (and evaluate) a checkpoint: mmpretrain's ``tools/test.py``.

Accepts a plain mmpretrain classifier config with its checkpoint, or an mmnckd
distiller config with a distiller checkpoint (the student is evaluated; the
teacher checkpoint is not loaded). A distiller checkpoint given with a plain
config, or the reverse, is refused with a message naming the config to use.
Runs on several processes without a GPU like ``tools/train.py``.
"""
import argparse
import os
from copy import deepcopy

import mmengine
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS, init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import MODELS

import mmnckd  # noqa: F401  (registers mmnckd and the safe checkpoint types)
from mmnckd.models.distillers import is_distiller_type
from mmnckd.utils import (check_finite, check_state_matches, default_work_dir,
                          drop_disabled_hooks, init_cpu_distributed,
                          set_dataloader_defaults, shutdown_distributed,
                          strip_prefix)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the metrics file goes')
    parser.add_argument('--out', help='dump predictions or metrics here')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='what --out holds (default: predictions)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, key=value (lists as key="[a,b]")')
    parser.add_argument('--amp', action='store_true', help='fp16 test')
    parser.add_argument('--show-dir', help='save visualisations here')
    parser.add_argument('--show', action='store_true')
    parser.add_argument('--interval', type=int, default=1)
    parser.add_argument('--wait-time', type=float, default=2)
    parser.add_argument('--no-pin-memory', action='store_true')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation (the config\'s tta_model/tta_pipeline, '
        'else flip TTA)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out')
    return args


def merge_args(cfg, args):
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    default_work_dir(cfg, args.config)
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg.fp16 = True
    if args.show or args.show_dir is not None:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise ValueError(
                '--show/--show-dir need default_hooks.visualization = '
                'dict(type="VisualizationHook") in the config.')
        vis.update(
            enable=True,
            show=args.show,
            wait_time=args.wait_time,
            out_dir=args.show_dir,
            interval=args.interval)
    if args.tta:
        test_pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
        if 'tta_pipeline' not in cfg:
            cfg.tta_pipeline = deepcopy(test_pipeline)
            cfg.tta_pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[[
                    dict(type='RandomFlip', prob=1.),
                    dict(type='RandomFlip', prob=0.)
                ], [test_pipeline[-1]]])
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    set_dataloader_defaults(
        cfg, ('test_dataloader', ),
        dict(pin_memory=True, collate_fn=dict(type='default_collate')),
        dict(pin_memory=False) if args.no_pin_memory else None)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def check_checkpoint(cfg, config: str, checkpoint: str) -> None:
    """Refuse a checkpoint that does not fit the config before testing.

    mmengine loads checkpoints non-strictly and would only warn about
    missing keys, then test randomly initialised weights. Refused: a
    distiller checkpoint with a plain classifier config and the reverse; a
    distiller checkpoint whose student weights do not match the config's
    student exactly (keys and shapes, e.g. a KD checkpoint on an NCKD
    config); NaN/Inf weights.
    """
    model_cfg = cfg.model
    if 'TTA' in str(model_cfg.get('type')) and 'module' in model_cfg:
        model_cfg = model_cfg.module
    model_type = model_cfg.get('type')
    is_distiller = is_distiller_type(model_type)
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    keys = [k[7:] if k.startswith('module.') else k for k in state]
    from_distiller = any(k.startswith('student.') for k in keys)
    if is_distiller and not from_distiller:
        raise ValueError(
            f'{checkpoint} holds no "student." weights (a plain classifier '
            f'checkpoint, e.g. an exported student), but {config} has '
            f'model.type={model_type!r}: test it with the plain classifier '
            f'config it belongs to (export_student.py writes '
            f'<name>_student.py next to <name>_student.pth), or pass the '
            f'distiller checkpoint (work_dir/epoch_N.pth) with this config.')
    if not is_distiller and from_distiller:
        raise ValueError(
            f'{checkpoint} is a distiller checkpoint ("student." '
            f'weights), but {config} has model.type={model_type!r}: test it '
            f'with the distiller config it was trained with, or export the '
            f'student first (python tools/model_converters/export_student.py '
            f'DISTILLER_CONFIG {checkpoint} OUT_DIR) and test '
            f'OUT_DIR/<name>_student.py with OUT_DIR/<name>_student.pth.')
    if is_distiller:
        # only the student is tested: its weights must match exactly
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))
        student = MODELS.build(model_cfg).student
        check_state_matches(
            student,
            strip_prefix(state, 'student.'),
            f'The student weights ("student.*") of {checkpoint}',
            'Test a checkpoint with the config it was trained with '
            '(work_dir/<config name>.py is a copy of it).',
            ignore=('data_preprocessor.', ))
    check_finite(
        state.items(), f'Checkpoint {checkpoint}',
        'Its training diverged or the file was damaged: test an earlier '
        'checkpoint of the run (work_dir/epoch_N.pth).')


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_args(Config.fromfile(args.config), args)
    check_checkpoint(cfg, args.config, args.checkpoint)
    drop_disabled_hooks(cfg)
    init_cpu_distributed(cfg)
    runner = (
        Runner.from_cfg(cfg)
        if 'runner_type' not in cfg else RUNNERS.build(cfg))
    if args.out and args.out_item in ('pred', None):
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)
    # on success only (a failing rank must exit); after a gloo run it ends
    # the process, so everything else is done before it
    shutdown_distributed()
    return metrics


if __name__ == '__main__':
    main()

"""Train a model (a plain mmpretrain classifier or an mmnckd distiller).

The flags and behaviour of mmpretrain's ``tools/train.py``; in addition it
runs several processes on a machine without a GPU (gloo; see
``mmnckd.utils.init_cpu_distributed``) and loads checkpoints under torch's
``weights_only=True``.
"""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmnckd  # noqa: F401  (registers mmnckd and the safe checkpoint types)
from mmnckd.utils import (default_work_dir, drop_disabled_hooks,
                          init_cpu_distributed, set_dataloader_defaults,
                          shutdown_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by actual / base batch size (auto_scale_lr)')
    parser.add_argument('--no-pin-memory', action='store_true')
    parser.add_argument('--no-persistent-workers', action='store_true')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, key=value (lists as key="[a,b]")')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch>=2) or
    # --local_rank (older); torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg, args):
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    default_work_dir(cfg, args.config)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.amp:
        from mmengine.device import (is_cuda_available, is_mlu_available,
                                     is_npu_available)
        if not (is_cuda_available() or is_npu_available()
                or is_mlu_available()):
            raise SystemExit(
                '--amp needs a GPU (or NPU/MLU): mmengine\'s AmpOptimWrapper '
                'autocasts to float16 with a loss scaler on such a device '
                'only. Train without --amp on a CPU.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr') is None:
            raise ValueError(
                '--auto-scale-lr needs `auto_scale_lr = dict('
                'base_batch_size=...)` in the config: the total batch size '
                'its learning rate was set for.')
        cfg.auto_scale_lr.enable = True
    overrides = {}
    if args.no_pin_memory:
        overrides['pin_memory'] = False
    if args.no_persistent_workers:
        overrides['persistent_workers'] = False
    set_dataloader_defaults(
        cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'),
        dict(
            pin_memory=True,
            persistent_workers=True,
            collate_fn=dict(type='default_collate')), overrides)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_args(Config.fromfile(args.config), args)
    drop_disabled_hooks(cfg)
    init_cpu_distributed(cfg)
    runner = (
        Runner.from_cfg(cfg)
        if 'runner_type' not in cfg else RUNNERS.build(cfg))
    runner.train()
    shutdown_distributed()  # on success only: a failing rank must exit


if __name__ == '__main__':
    main()

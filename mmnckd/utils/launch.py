"""What ``tools/train.py`` and ``tools/test.py`` add to mmpretrain's tools.

mmengine's ``init_dist`` pins a CUDA device before it creates the process
group, so stock mmpretrain cannot train with several processes on a machine
without a GPU. ``init_cpu_distributed`` creates the process group itself with
the ``gloo`` backend when no GPU is present (the Runner then finds it
initialised and skips its own init) and wraps the model in DDP without device
ids. With GPUs nothing changes: mmengine initialises ``nccl`` as usual.
"""
import atexit
import os
import os.path as osp
import subprocess
import sys
from copy import deepcopy
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.config import ConfigDict


def _slurm_env() -> None:
    """Translate Slurm's variables into torch's ``env://`` ones."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {node_list} | head -n1')
    os.environ.setdefault('MASTER_PORT', '29500')


def _mpi_env() -> None:
    os.environ.setdefault('RANK', os.environ['OMPI_COMM_WORLD_RANK'])
    os.environ.setdefault('WORLD_SIZE', os.environ['OMPI_COMM_WORLD_SIZE'])
    os.environ.setdefault('LOCAL_RANK',
                          os.environ['OMPI_COMM_WORLD_LOCAL_RANK'])
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    os.environ.setdefault('MASTER_PORT', '29500')


def init_cpu_distributed(cfg) -> bool:
    """Initialise a gloo process group when launched without a GPU.

    Returns True when it initialised one. Leaves GPU runs to mmengine.
    """
    launcher = cfg.get('launcher', 'none')
    if (launcher == 'none' or torch.cuda.is_available()
            or torch_dist.is_initialized()):
        return False
    if launcher == 'slurm':
        _slurm_env()
    elif launcher == 'mpi':
        _mpi_env()
    timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', 1800)
    torch_dist.init_process_group(
        backend='gloo',
        init_method='env://',
        timeout=timedelta(seconds=timeout))
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None  # CPU modules take no device ids
    cfg.model_wrapper_cfg = wrapper
    return True


def shutdown_distributed() -> None:
    """Tear the process group down; after a gloo run, end the process here.

    mmengine leaves the process group alive at the end of a run. With gloo,
    ``destroy_process_group`` alone does not end it either: DDP still holds
    Python references to the group, so its worker threads live on into the
    interpreter's finalization, where the process can abort ("terminate
    called without an active exception", exit code -6; likely as torch's
    abandoned PR #179291 describes it: a gloo thread that drops a tensor
    needs the GIL, which a finalizing interpreter no longer hands out)
    after the job has finished, failing the whole launch: rarely (1 of 67
    launches of the 2-process job of ``.dev_scripts/gloo_exit_check.py``),
    but in two clean-clone runs of this project's tests.

    So after a gloo run this runs the ``atexit`` handlers (log files,
    DataLoader workers, multiprocessing children), flushes stdout and
    stderr, and leaves with ``os._exit(0)``: everything a normal exit does
    except the finalization, as ``multiprocessing`` ends its own children.
    Called on success only: a failing rank raises and exits non-zero.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    gloo = torch_dist.get_backend() == 'gloo'
    torch_dist.barrier()
    torch_dist.destroy_process_group()
    if gloo:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def set_dataloader_defaults(cfg, fields, defaults, overrides=None) -> None:
    """Fill each named dataloader's missing keys from ``defaults``, then
    force ``overrides`` (command-line flags such as ``--no-pin-memory``)."""
    for field in fields:
        if cfg.get(field) is None:
            continue
        merged = ConfigDict(deepcopy(defaults))
        merged.update(cfg[field])
        merged.update(overrides or {})
        if merged.get('num_workers', 0) == 0:
            merged['persistent_workers'] = False
        cfg[field] = merged


def default_work_dir(cfg, config_path: str) -> None:
    """``--work-dir`` > the config's ``work_dir`` > ``./work_dirs/<name>``."""
    if cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path))[0]
        cfg.work_dir = osp.join('./work_dirs', name)


def drop_disabled_hooks(cfg) -> None:
    """Remove ``default_hooks`` entries set to None.

    mmengine only lets ``None`` disable its own six default hooks and asserts
    on any other; this lets ``default_hooks = dict(random_state=None)``
    disable the hooks mmnckd's default runtime adds.
    """
    hooks = cfg.get('default_hooks')
    if hooks:
        cfg.default_hooks = {k: v for k, v in hooks.items() if v is not None}

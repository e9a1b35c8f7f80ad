"""How often a finished 2-process gloo job aborts at exit, with and without
``mmnckd.utils.shutdown_distributed``.

    python .dev_scripts/gloo_exit_check.py --runs 100

Each run launches ``torch.distributed.run --nproc_per_node 2`` on a small
DDP job on the CPU (gloo): a few SGD steps whose loss all-reduces a batch
statistic with a differentiable all-reduce, as NCKD's global-batch NC2 and
projector BatchNorm do. It then ends in one of two ways:

* ``destroy``: ``barrier`` and ``destroy_process_group``, then a normal
  interpreter exit (what ``tools/train.py`` did before);
* ``mmnckd``: ``shutdown_distributed()`` (the same, then the ``atexit``
  handlers and ``os._exit(0)``, skipping the interpreter's finalization).

A launch fails when a rank exits non-zero; the table counts the failures,
those whose output says "terminate called" (the C++ runtime aborting), and
those in which both ranks had printed that they finished the job first.
"""
import argparse
import os
import subprocess
import sys
import time


def worker(mode: str, steps: int) -> None:
    import warnings

    import torch
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_reduce
    from torch.nn.parallel import DistributedDataParallel

    warnings.simplefilter('ignore')  # the deprecation of all_reduce
    dist.init_process_group('gloo')
    torch.manual_seed(dist.get_rank())
    model = DistributedDataParallel(
        torch.nn.Sequential(
            torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)))
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        out = model(torch.randn(16, 32))
        mean = all_reduce(out.sum(0)) / (16 * dist.get_world_size())
        loss = (out - mean).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    print(f'rank {dist.get_rank()} finished', flush=True)
    if mode == 'mmnckd':
        from mmnckd.utils import shutdown_distributed
        shutdown_distributed()  # does not return
    dist.barrier()
    dist.destroy_process_group()


def launch(mode: str, steps: int, port: int) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={port}',
        os.path.abspath(__file__), '--worker', mode, '--steps',
        str(steps)
    ]
    # a rank that aborts prints its Python stack ("<no Python frame>" when
    # it dies in the interpreter's finalization)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONFAULTHANDLER='1')
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=50)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--port', type=int, default=29780)
    parser.add_argument(
        '--modes',
        nargs='+',
        default=['destroy', 'mmnckd'],
        choices=['destroy', 'mmnckd'])
    parser.add_argument('--worker', choices=['destroy', 'mmnckd'])
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    print('| exit | launches | failed | "terminate called" | failed after '
          'the job finished | s/launch |')
    print('|---|---|---|---|---|---|')
    for mode in args.modes:
        failed = aborted = after = 0
        start = time.time()
        for _ in range(args.runs):
            proc = launch(mode, args.steps, args.port)
            if proc.returncode == 0:
                continue
            out = proc.stdout + proc.stderr
            failed += 1
            aborted += 'terminate called' in out
            after += all(f'rank {r} finished' in out for r in (0, 1))
        per = (time.time() - start) / args.runs
        print(
            f'| {mode} | {args.runs} | {failed} | {aborted} | {after} | '
            f'{per:.1f} |',
            flush=True)


if __name__ == '__main__':
    main()

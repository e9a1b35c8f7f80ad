"""Helpers of the in-process multi-process tests (torch.multiprocessing
workers on CPU with gloo)."""
import socket
from contextlib import contextmanager

import torch.distributed as torch_dist


def free_port() -> int:
    """A TCP port nobody listens on now (for ``init_method``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@contextmanager
def gloo_group(rank: int, world_size: int, port: int):
    """A gloo process group for the body of a worker, destroyed after."""
    torch_dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    try:
        yield
    finally:
        torch_dist.destroy_process_group()

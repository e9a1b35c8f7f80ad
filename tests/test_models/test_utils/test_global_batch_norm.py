"""GlobalBatchNorm1d: on 2 processes (gloo, CPU) each rank's output, input
gradient and running statistics equal those of nn.BatchNorm1d on the two
ranks' samples concatenated; on one process it is BatchNorm1d."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dist_utils import free_port

from mmnckd.models.utils import GlobalBatchNorm1d


def _data():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(
        8, 5, generator=gen) * 3 + 1, torch.randn(
            8, 5, generator=gen)


def _reference():
    x, g = _data()
    x.requires_grad_(True)
    bn = torch.nn.BatchNorm1d(5)
    with torch.no_grad():
        bn.weight.uniform_(
            0.5, 1.5, generator=torch.Generator().manual_seed(1))
    y = bn(x)
    (y * g).sum().backward()
    return y.detach(), x.grad, bn


def _worker(rank, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    torch.set_num_threads(1)
    x, g = _data()
    x = x[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
    bn = GlobalBatchNorm1d(5)
    with torch.no_grad():
        bn.weight.uniform_(
            0.5, 1.5, generator=torch.Generator().manual_seed(1))
    y = bn(x)
    (y * g[rank * 4:(rank + 1) * 4]).sum().backward()
    torch.save(
        dict(
            y=y.detach(),
            grad=x.grad,
            running_mean=bn.running_mean,
            running_var=bn.running_var,
            weight_grad=bn.weight.grad), f'{out}/rank{rank}.pth')
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one_batch_norm_on_all_samples(tmp_path):
    y, grad, bn = _reference()
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    torch.testing.assert_close(torch.cat([r['y'] for r in ranks]), y)
    torch.testing.assert_close(torch.cat([r['grad'] for r in ranks]), grad)
    for r in ranks:
        torch.testing.assert_close(r['running_mean'], bn.running_mean)
        torch.testing.assert_close(r['running_var'], bn.running_var)
    # each rank holds its share of the affine parameters' gradient
    torch.testing.assert_close(
        ranks[0]['weight_grad'] + ranks[1]['weight_grad'], bn.weight.grad)


def test_one_process_is_batch_norm():
    x, _ = _data()
    plain, glob = torch.nn.BatchNorm1d(5), GlobalBatchNorm1d(5)
    torch.testing.assert_close(glob(x), plain(x))
    torch.testing.assert_close(glob.running_var, plain.running_var)
    assert glob.state_dict().keys() == plain.state_dict().keys()


def test_projector_sync_bn_uses_it():
    from mmnckd.models.necks import Projector
    proj = Projector(4, 6, mode='mlp', sync_bn=True)
    assert sum(isinstance(m, GlobalBatchNorm1d) for m in proj.modules()) == 2
    assert not any(
        isinstance(m, GlobalBatchNorm1d)
        for m in Projector(4, 6, mode='mlp').modules())

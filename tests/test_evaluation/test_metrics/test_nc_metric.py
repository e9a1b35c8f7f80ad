"""NCMetric: through mmengine's Evaluator, with padded ranks (simulated and
on 2 gloo processes) and equal to ``nc_metrics`` on the same samples."""
import math

import pytest
import torch
from dist_utils import free_port, gloo_group
from mmengine.evaluator import Evaluator
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

from mmnckd.evaluation import NCMetric, nc_metrics


def _data(N=200, K=5, d=12, seed=0, noise=0.5):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (N, ), generator=g)
    centres = torch.randn(K, d, generator=g) * 2
    feats = centres[labels] + noise * torch.randn(N, d, generator=g)
    return feats, labels


def _close(a, b, tol=1e-8):
    assert a.keys() == b.keys()
    for k in a:
        assert math.isclose(a[k], b[k], rel_tol=tol, abs_tol=tol), (k, a, b)


def _samples(feats, labels, weight=None):
    out = []
    for f, y in zip(feats, labels):
        s = DataSample().set_gt_label(int(y))
        s.set_field(f, 'pre_logits')
        if weight is not None:
            s.set_field(weight, 'cls_weight')
        out.append(s)
    return out


def test_metric_through_evaluator():
    feats, labels = _data(N=90)
    W = torch.randn(5, 12)
    evaluator = Evaluator(dict(type='NCMetric', _scope_='mmpretrain'))
    samples = _samples(feats, labels, weight=W)
    for i in range(0, 90, 16):
        evaluator.process(samples[i:i + 16])
    res = evaluator.evaluate(90)
    expected = nc_metrics(feats, labels, weight=W)
    _close({k.split('/')[1]: v for k, v in res.items()}, expected, tol=1e-9)
    assert set(res) == {'nc/nc1', 'nc/nc2', 'nc/nc2_equinorm', 'nc/nc3'}

    # the state was reset: a second round only sees the new data
    for i in range(0, 40, 16):
        evaluator.process(_samples(feats[:40], labels[:40])[i:i + 16])
    res2 = evaluator.evaluate(40)
    _close({
        k.split('/')[1]: v
        for k, v in res2.items()
    },
           nc_metrics(feats[:40], labels[:40]),
           tol=1e-9)


def test_metric_direct_dicts_and_size_truncation():
    feats, labels = _data(N=50)
    metric = METRICS.build(dict(type='NCMetric'))
    dicts = [s.to_dict() for s in _samples(feats, labels)]
    metric.process(None, dicts[:30])
    metric.process(None, dicts[30:])
    assert len(metric.results) == 1  # one state per process, no features
    assert 'pre_logits' not in metric.results[0]
    # size 49: the last (padded) sample is dropped like mmengine would
    res = metric.evaluate(49)
    _close({
        k[3:]: v
        for k, v in res.items()
    },
           nc_metrics(feats[:49], labels[:49]),
           tol=1e-9)


def test_metric_simulated_ranks_with_padding():
    """Two ranks of a DefaultSampler(round_up=True) over 7 samples."""
    feats, labels = _data(N=7, K=3, seed=4)
    indices = list(range(7)) + [0]  # padded to 8
    ranks = [indices[0::2], indices[1::2]]
    parts = []
    for rank_idx in ranks:
        m = NCMetric()
        m.process(
            None,
            [s.to_dict() for s in _samples(feats[rank_idx], labels[rank_idx])])
        parts.append(m.results[0])
    m = NCMetric()
    m._size = 7  # what evaluate(size) sets before compute_metrics
    _close(m.compute_metrics(parts), nc_metrics(feats, labels), tol=1e-9)
    # without the size the padded duplicate of sample 0 is counted
    m._size = None
    _close(
        m.compute_metrics(parts),
        nc_metrics(feats[indices], labels[indices]),
        tol=1e-9)


class _OnAccelerator(torch.Tensor):
    """Stands for a tensor on an accelerator (``cuda:k``; there is no GPU
    here): every op keeps the type, only a copy to the host -- ``.cpu()``,
    ``.to('cpu')``, ``.to(device='cpu')`` -- gives a plain CPU tensor."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        to_host = func is torch.Tensor.cpu or (func is torch.Tensor.to and any(
            isinstance(a,
                       (str, torch.device)) and torch.device(a).type == 'cpu'
            for a in (*args[1:], kwargs.get('device'))))
        if not to_host:
            return super().__torch_function__(func, types, args, kwargs)
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
            if out is args[0]:  # a no-op on the CPU; a real move copies
                out = out.clone()
        return out.as_subclass(torch.Tensor)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)


def test_metric_keeps_detached_cpu_copies():
    """What ``process()`` keeps is on the CPU (copied there, as mmengine's
    metrics do with ``.cpu()``, so rank 0 never unpickles ``cuda:k``
    tensors), detached and owning its memory: the inputs are views that
    require grad, of tensors "on an accelerator" that change afterwards."""
    feats, labels = _data(N=21, K=3, d=6, seed=5)
    W = torch.randn(3, 6)
    big = torch.cat([feats, torch.randn(21, 2)], 1)
    big = big.as_subclass(_OnAccelerator).requires_grad_()
    w_big = torch.cat([W, torch.randn(3, 4)], 1)
    w_big = w_big.as_subclass(_OnAccelerator).requires_grad_()
    views, w_view = big[:, :6], w_big[:, :6]
    inputs = {
        big.untyped_storage().data_ptr(),
        w_big.untyped_storage().data_ptr()
    }
    assert views.untyped_storage().data_ptr() in inputs
    assert views.requires_grad and w_view.requires_grad
    metric = NCMetric()
    dicts = [
        dict(pre_logits=f, gt_label=torch.tensor([int(y)]), cls_weight=w_view)
        for f, y in zip(views, labels)
    ]
    metric.process(None, dicts[:10])
    metric.process(None, dicts[10:])
    state = metric.results[0]
    kept = {
        'weight': state['weight'],
        'last_feat': state['last_feat'],
        **{
            f'acc.{k}': v
            for k, v in state['acc'].items() if isinstance(v, torch.Tensor)
        }
    }
    assert set(kept) == {
        'weight', 'last_feat', 'acc.sums', 'acc.counts', 'acc.scatter'
    }
    assert len(list(_tensors(state))) == len(kept)  # nothing else
    for name, t in kept.items():
        assert type(t) is torch.Tensor, (name, type(t))  # copied to host
        assert t.device.type == 'cpu', name
        assert not t.requires_grad and t.grad_fn is None, name
        # its own memory, not a view of an input
        assert t.untyped_storage().data_ptr() not in inputs, name
    # changing the inputs afterwards does not change the result
    with torch.no_grad():
        big.add_(100.0)
        w_big.mul_(-3.0)
    res = metric.evaluate(21)
    _close({
        k[3:]: v
        for k, v in res.items()
    },
           nc_metrics(feats, labels, weight=W),
           tol=1e-9)


def test_metric_missing_feature():
    metric = NCMetric(feat_key='my_feat')
    sample = DataSample().set_gt_label(0).to_dict()
    with pytest.raises(KeyError, match='my_feat'):
        metric.process(None, [sample])
    with pytest.raises(KeyError, match='pre_logits'):
        NCMetric().compute_metrics([])


def _dist_worker(rank, world_size, port, collect_dir, feats, labels, queue):
    with gloo_group(rank, world_size, port):
        size = len(labels)
        # mmengine DefaultSampler(shuffle=False, round_up=True)
        total = -(-size // world_size) * world_size
        indices = (list(range(size)) * 2)[:total][rank::world_size]
        metric = NCMetric(collect_dir=collect_dir)
        samples = _samples(feats[indices], labels[indices])
        for i in range(0, len(samples), 2):
            metric.process(None, [s.to_dict() for s in samples[i:i + 2]])
        res = metric.evaluate(size)
        if rank == 0:
            queue.put(res)


@pytest.mark.slow
def test_metric_distributed_cpu_collect(tmp_path):
    import torch.multiprocessing as mp
    if not torch.distributed.is_available():
        pytest.skip('torch.distributed unavailable')
    port = free_port()
    feats, labels = _data(N=7, K=3, seed=5)  # 2 ranks: 1 padded sample
    ctx = mp.get_context('spawn')
    queue = ctx.SimpleQueue()
    mp.spawn(
        _dist_worker,
        nprocs=2,
        args=(2, port, str(tmp_path / 'collect'), feats, labels, queue))
    res = queue.get()
    _close({
        k[3:]: v
        for k, v in res.items()
    },
           nc_metrics(feats, labels),
           tol=1e-9)

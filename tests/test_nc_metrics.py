import math

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

from mmnckd.evaluation import NCAccumulator, NCMetric, nc_metrics
from mmnckd.models.utils import simplex_etf


def _reference(feats, labels, weight=None):
    """Direct (non-streaming) implementation of the definitions."""
    h = feats.double()
    classes = labels.unique()
    K = len(classes)
    mu = torch.stack([h[labels == c].mean(0) for c in classes])
    mu_g = mu.mean(0)
    centred_h = h - mu[torch.searchsorted(classes, labels)]
    sigma_w = centred_h.t() @ centred_h / len(h)
    M = mu - mu_g
    sigma_b = M.t() @ M / K
    nc1 = torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True)) / K
    unit = M / M.norm(dim=1, keepdim=True)
    cos = unit @ unit.t()
    off = ~torch.eye(K, dtype=torch.bool)
    nc2 = (cos[off] + 1 / (K - 1)).abs().mean()
    norms = M.norm(dim=1)
    out = dict(nc1=float(nc1), nc2=float(nc2),
               nc2_equinorm=float(norms.std(unbiased=False) / norms.mean()))
    if weight is not None:
        w = weight.double()[classes]
        out['nc3'] = float(torch.nn.functional.cosine_similarity(w, M).mean())
    return out


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


def test_perfect_collapse():
    K, d = 6, 10
    E = simplex_etf(K, d, seed=3).double()
    labels = torch.arange(K).repeat(20)
    feats = 4.0 * E[labels] + 1.5  # same shift for all: mu_G absorbs it
    out = nc_metrics(feats, labels, weight=E)
    assert set(out) == {'nc1', 'nc2', 'nc2_equinorm', 'nc3'}
    assert all(isinstance(v, float) for v in out.values())
    assert out['nc1'] < 1e-10
    # simplex_etf is float32: its angles/norms are exact to ~1e-8
    assert out['nc2'] < 1e-6
    assert out['nc2_equinorm'] < 1e-6
    assert abs(out['nc3'] - 1) < 1e-8
    # float32 features: still collapsed up to float32 precision
    out32 = nc_metrics(feats.float(), labels, weight=E.float())
    assert out32['nc1'] < 1e-6 and out32['nc2'] < 1e-5
    # small within-class noise gives a small but positive nc1
    noisy = nc_metrics(feats + 1e-3 * torch.randn_like(feats), labels)
    assert 0 < noisy['nc1'] < 1e-4
    assert abs(out32['nc3'] - 1) < 1e-5


def test_hand_computed_1d():
    # K=2, d=1: class 0 at {-2, 0} (mean -1), class 1 at {1, 3} (mean 2).
    feats = torch.tensor([[-2.], [0.], [1.], [3.]])
    labels = torch.tensor([0, 0, 1, 1])
    # mu_G = 0.5; Sigma_W = (1+1+1+1)/4 = 1; Sigma_B = (1.5^2 + 1.5^2)/2 = 2.25
    out = nc_metrics(feats, labels, weight=torch.tensor([[1.], [1.]]))
    assert math.isclose(out['nc1'], 1 / 2.25 / 2, rel_tol=1e-12)
    assert out['nc2'] < 1e-12  # two opposite means are a 2-class ETF
    assert out['nc2_equinorm'] < 1e-12
    assert math.isclose(out['nc3'], 0.0, abs_tol=1e-12)  # cos -1 and +1


def test_hand_computed_2d_non_etf():
    # K=3 class means at the corners (0,0), (3,0), (0,3) of a right triangle
    # with +-1 noise along x inside each class.
    feats = torch.tensor([[-1., 0.], [1., 0.], [2., 0.], [4., 0.],
                          [-1., 3.], [1., 3.]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    out = nc_metrics(feats, labels)
    # mu_G = (1, 1); centred means a=(-1,-1), b=(2,-1), c=(-1,2)
    a, b, c = (torch.tensor(v, dtype=torch.float64)
               for v in ([-1., -1.], [2., -1.], [-1., 2.]))
    sigma_w = torch.tensor([[1., 0.], [0., 0.]], dtype=torch.float64)
    sigma_b = (torch.outer(a, a) + torch.outer(b, b) + torch.outer(c, c)) / 3
    nc1 = torch.trace(sigma_w @ torch.linalg.inv(sigma_b)) / 3
    assert math.isclose(out['nc1'], float(nc1), rel_tol=1e-12)
    # Sigma_B = [[2, -1], [-1, 2]], inverse [[2, 1], [1, 2]] / 3 -> nc1 = 2/9
    assert math.isclose(out['nc1'], 2 / 9, rel_tol=1e-12)
    cos_ab = -1 / math.sqrt(10)  # a.b = -1, |a|=sqrt2, |b|=sqrt5
    cos_bc = -4 / 5
    nc2 = (2 * abs(cos_ab + 0.5) + abs(cos_bc + 0.5)) / 3
    assert math.isclose(out['nc2'], nc2, rel_tol=1e-12)
    norms = torch.tensor([math.sqrt(2), math.sqrt(5), math.sqrt(5)])
    assert math.isclose(out['nc2_equinorm'],
                        float(norms.std(unbiased=False) / norms.mean()),
                        rel_tol=1e-6)


def test_matches_reference():
    feats, labels = _data(d=12)
    W = torch.randn(5, 12)
    _close(nc_metrics(feats, labels, weight=W),
           _reference(feats, labels, weight=W), tol=1e-7)
    # d < K - 1: Sigma_B is full rank
    feats, labels = _data(K=8, d=3, seed=1)
    _close(nc_metrics(feats, labels), _reference(feats, labels), tol=1e-7)


def test_absent_classes_ignored():
    feats, labels = _data(K=4)
    shifted = labels * 2 + 1  # labels 1, 3, 5, 7 present; 0, 2, 4, 6 absent
    W = torch.randn(4, 12)
    W8 = torch.zeros(8, 12)
    W8[1::2] = W
    _close(nc_metrics(feats, shifted, weight=W8),
           nc_metrics(feats, labels, weight=W))


def test_streaming_and_merge():
    feats, labels = _data(N=301)
    whole = nc_metrics(feats, labels)
    acc = NCAccumulator()
    for chunk_f, chunk_l in zip(feats.split(37), labels.split(37)):
        acc.update(chunk_f, chunk_l)
    assert acc.num_samples == 301
    _close(acc.compute(), whole, tol=1e-9)

    a, b = NCAccumulator(), NCAccumulator()
    a.update(feats[:100], labels[:100])
    b.update(feats[100:], labels[100:])
    _close(a.merge(b).compute(), whole, tol=1e-9)

    # through plain-tensor state (as sent across processes)
    a, b = NCAccumulator(), NCAccumulator()
    a.update(feats[:150], labels[:150])
    b.update(feats[150:], labels[150:])
    merged = NCAccumulator.from_state(a.state_dict())
    merged.merge(NCAccumulator.from_state(b.state_dict()))
    _close(merged.compute(), whole, tol=1e-9)


def test_grows_classes_and_merges_different_sizes():
    feats, labels = _data(K=5)
    a, b = NCAccumulator(), NCAccumulator()
    a.update(feats[labels < 2], labels[labels < 2])
    assert a.sums.shape[0] == 2
    b.update(feats[labels >= 2], labels[labels >= 2])
    assert b.sums.shape[0] == 5
    _close(a.merge(b).compute(), nc_metrics(feats, labels), tol=1e-9)


def test_accumulator_errors():
    acc = NCAccumulator(num_classes=3)
    with pytest.raises(ValueError):
        acc.update(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError):
        acc.update(torch.randn(2, 4), torch.tensor([0]))
    acc.update(torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        acc.update(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        NCAccumulator().compute()
    one = NCAccumulator()
    one.update(torch.randn(3, 4), torch.tensor([1, 1, 1]))
    with pytest.warns(UserWarning):
        assert math.isnan(one.compute()['nc1'])


# ------------------------------------------------------------ the metric
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
    _close({k.split('/')[1]: v for k, v in res2.items()},
           nc_metrics(feats[:40], labels[:40]), tol=1e-9)


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
    _close({k[3:]: v for k, v in res.items()},
           nc_metrics(feats[:49], labels[:49]), tol=1e-9)


def test_metric_simulated_ranks_with_padding():
    """Two ranks of a DefaultSampler(round_up=True) over 7 samples."""
    feats, labels = _data(N=7, K=3, seed=4)
    indices = list(range(7)) + [0]  # padded to 8
    ranks = [indices[0::2], indices[1::2]]
    parts = []
    for rank_idx in ranks:
        m = NCMetric()
        m.process(None, [s.to_dict() for s in
                         _samples(feats[rank_idx], labels[rank_idx])])
        parts.append(m.results[0])
    m = NCMetric()
    m._size = 7  # what evaluate(size) sets before compute_metrics
    _close(m.compute_metrics(parts), nc_metrics(feats, labels), tol=1e-9)
    # without the size the padded duplicate of sample 0 is counted
    m._size = None
    _close(m.compute_metrics(parts),
           nc_metrics(feats[indices], labels[indices]), tol=1e-9)


def test_metric_missing_feature():
    metric = NCMetric(feat_key='my_feat')
    sample = DataSample().set_gt_label(0).to_dict()
    with pytest.raises(KeyError, match='my_feat'):
        metric.process(None, [sample])
    with pytest.raises(KeyError, match='pre_logits'):
        NCMetric().compute_metrics([])


def _dist_worker(rank, world_size, port, collect_dir, feats, labels, queue):
    import torch.distributed as torch_dist
    torch_dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
        world_size=world_size)
    try:
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
    finally:
        torch_dist.destroy_process_group()


def test_metric_distributed_cpu_collect(tmp_path):
    import socket

    import torch.multiprocessing as mp
    if not torch.distributed.is_available():
        pytest.skip('torch.distributed unavailable')
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    feats, labels = _data(N=7, K=3, seed=5)  # 2 ranks: 1 padded sample
    ctx = mp.get_context('spawn')
    queue = ctx.SimpleQueue()
    mp.spawn(_dist_worker, nprocs=2,
             args=(2, port, str(tmp_path / 'collect'), feats, labels, queue))
    res = queue.get()
    _close({k[3:]: v for k, v in res.items()}, nc_metrics(feats, labels),
           tol=1e-9)

"""``nc_metrics`` and ``NCAccumulator`` against hand-computed values and a
direct (non-streaming) reference."""
import math

import pytest
import torch

from mmnckd.evaluation import NCAccumulator, nc_metrics
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
    out = dict(
        nc1=float(nc1),
        nc2=float(nc2),
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
    feats = torch.tensor([[-1., 0.], [1., 0.], [2., 0.], [4., 0.], [-1., 3.],
                          [1., 3.]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    out = nc_metrics(feats, labels)
    # mu_G = (1, 1); centred means a=(-1,-1), b=(2,-1), c=(-1,2)
    a, b, c = (
        torch.tensor(v, dtype=torch.float64)
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
    assert math.isclose(
        out['nc2_equinorm'],
        float(norms.std(unbiased=False) / norms.mean()),
        rel_tol=1e-6)


def test_matches_reference():
    feats, labels = _data(d=12)
    W = torch.randn(5, 12)
    _close(
        nc_metrics(feats, labels, weight=W),
        _reference(feats, labels, weight=W),
        tol=1e-7)
    # d < K - 1: Sigma_B is full rank
    feats, labels = _data(K=8, d=3, seed=1)
    _close(nc_metrics(feats, labels), _reference(feats, labels), tol=1e-7)


def test_absent_classes_ignored():
    feats, labels = _data(K=4)
    shifted = labels * 2 + 1  # labels 1, 3, 5, 7 present; 0, 2, 4, 6 absent
    W = torch.randn(4, 12)
    W8 = torch.zeros(8, 12)
    W8[1::2] = W
    _close(
        nc_metrics(feats, shifted, weight=W8),
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


def test_non_finite_features_and_weight_are_named():
    """NaN features used to reach linalg.svd ('... non-finite') and a NaN
    head row gave nc3: nan without a word."""
    feats = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    acc = NCAccumulator(num_classes=3)
    acc.update(feats, labels)
    weight = torch.randn(3, 4, dtype=torch.float64)
    assert 'nc3' in acc.compute(weight)  # control
    weight[1, 2] = float('nan')
    with pytest.raises(ValueError, match=r'NaN/Inf values in rows \[1\]'):
        acc.compute(weight)
    feats[4, 0] = float('inf')
    with pytest.raises(ValueError, match='NaN/Inf features in 1 of 6'):
        NCAccumulator(num_classes=3).update(feats, labels)

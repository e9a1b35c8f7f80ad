"""``mmnckd.models.utils.etf``: simplex ETFs and the nearest ETF."""
import pytest
import torch

from mmnckd.models.utils import etf_gram, nearest_simplex_etf, simplex_etf


def _is_etf(E, atol=1e-5):
    K = E.size(0)
    norms = E.norm(dim=1)
    gram = E @ E.t()
    return (torch.allclose(norms, torch.ones(K), atol=atol)
            and torch.allclose(gram, etf_gram(K), atol=atol))


@pytest.mark.parametrize('K,d', [(2, 1), (3, 2), (5, 4), (5, 5), (10, 9),
                                 (10, 32), (100, 128)])
def test_simplex_etf_geometry(K, d):
    E = simplex_etf(K, d)
    assert E.shape == (K, d)
    assert torch.allclose(E.norm(dim=1), torch.ones(K), atol=1e-5)
    cos = E @ E.t()
    off = ~torch.eye(K, dtype=torch.bool)
    assert torch.allclose(
        cos[off], torch.full_like(cos[off], -1 / (K - 1)), atol=1e-5)


def test_simplex_etf_seed():
    assert torch.equal(simplex_etf(6, 16, seed=3), simplex_etf(6, 16, seed=3))
    assert not torch.allclose(
        simplex_etf(6, 16, seed=3), simplex_etf(6, 16, seed=4), atol=1e-3)
    with pytest.raises(ValueError):
        simplex_etf(10, 8)


def test_nearest_simplex_etf():
    torch.manual_seed(0)
    K, d = 6, 12
    P = simplex_etf(K, d, seed=1) + 0.3 * torch.randn(K, d)
    E = nearest_simplex_etf(P)
    assert _is_etf(E)
    dist = (E - P).norm()
    for seed in range(5):
        assert dist < (simplex_etf(K, d, seed=100 + seed) - P).norm()
    # an ETF is its own nearest ETF
    E0 = simplex_etf(K, d, seed=2)
    assert torch.allclose(nearest_simplex_etf(E0), E0, atol=1e-5)

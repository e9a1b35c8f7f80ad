"""``gram_distance``: its one-product backward against autograd."""
import pytest
import torch

from mmnckd.models.losses.gram_distance import gram_distance


def test_gram_distance_matches_autograd():
    # The one-product backward 4 (H H^T - T) H equals autograd's gradient.
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(7, 5, dtype=torch.float64, generator=gen)
    a = torch.randn(7, 3, dtype=torch.float64, generator=gen)
    target = a @ a.t()
    h1 = h.clone().requires_grad_(True)
    h2 = h.clone().requires_grad_(True)
    ours = gram_distance(h1, target)
    ref = (h2 @ h2.t() - target).pow(2).sum()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    (3.0 * ours).backward()
    (3.0 * ref).backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda x: gram_distance(x, target),
                                    (h.clone().requires_grad_(True), ))
    with pytest.raises(ValueError, match=r'\(7, 5\).*\(6, 6\)'):
        gram_distance(h, torch.eye(6, dtype=torch.float64))

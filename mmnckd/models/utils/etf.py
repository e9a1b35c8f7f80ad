"""Simplex equiangular tight frames (the Neural-Collapse NC2 geometry).

A simplex ETF of ``K`` unit vectors has pairwise cosine exactly ``-1/(K-1)``;
its Gram matrix is ``G = K/(K-1) * I - 1/(K-1) * 11^T``. As a ``K x d``
matrix it exists for ``d >= K - 1``.

``simplex_etf`` builds the canonical ``K x (K-1)`` frame
``E0 = sqrt(K/(K-1)) * (I_K - 11^T/K) B`` with ``B`` (``K x (K-1)``) an
orthonormal basis of the sum-zero subspace of R^K, then embeds it into R^d
with a seeded ``U`` (``d x (K-1)``, orthonormal columns): ``E = E0 U^T``.
So ``d = K - 1`` is enough (the literature's ``U (I - 11^T/K)`` form needs
``d >= K``).

``nearest_simplex_etf(P)`` keeps the orientation of given prototypes ``P``
(``K x d``) and enforces the ideal geometry: with ``E0`` a canonical
``K x (K-1)`` simplex ETF and ``E0^T P = U S V^T`` (thin SVD),
``E = E0 U V^T`` is the simplex ETF closest to ``P`` in Frobenius norm
(orthogonal Procrustes over embeddings of the ETF).
"""
import torch


def _check_dims(num_classes: int, dim: int) -> None:
    if num_classes < 2:
        raise ValueError(
            f'A simplex ETF needs num_classes >= 2, got {num_classes}.')
    if dim < num_classes - 1:
        raise ValueError(
            f'A simplex ETF of {num_classes} classes needs dim >= '
            f'num_classes - 1 = {num_classes - 1}, got dim={dim}. Project the '
            f'features to at least {num_classes - 1} channels first (e.g. '
            f'neck=dict(type="Projector", '
            f'out_channels={num_classes - 1}, ...)).')


def _canonical_etf(num_classes: int, dtype=torch.float64) -> torch.Tensor:
    """The K x (K-1) simplex ETF in coordinates of the sum-zero subspace."""
    K = num_classes
    centred = torch.eye(K, dtype=dtype) - 1.0 / K
    # Orthonormal basis of the sum-zero subspace: the top K-1 eigenvectors of
    # the centring projector (all with eigenvalue 1).
    _, vecs = torch.linalg.eigh(centred)
    basis = vecs[:, 1:]  # K x (K-1), orthonormal columns, orthogonal to 1
    return (centred @ basis) * (K / (K - 1))**0.5


def simplex_etf(num_classes: int, dim: int, seed: int = 0) -> torch.Tensor:
    """A seeded canonical simplex ETF: ``K x dim``, unit rows, cosine
    -1/(K-1)."""
    _check_dims(num_classes, dim)
    e0 = _canonical_etf(num_classes)
    gen = torch.Generator().manual_seed(seed)
    rand = torch.randn(
        dim, num_classes - 1, generator=gen, dtype=torch.float64)
    u, _ = torch.linalg.qr(rand)  # dim x (K-1), orthonormal columns
    return (e0 @ u.T).float()


def nearest_simplex_etf(prototypes: torch.Tensor) -> torch.Tensor:
    """The simplex ETF nearest to ``prototypes`` (``K x d``), same
    orientation."""
    num_classes, dim = prototypes.shape
    _check_dims(num_classes, dim)
    e0 = _canonical_etf(num_classes)
    u, _, vh = torch.linalg.svd(
        e0.T @ prototypes.double(), full_matrices=False)
    return (e0 @ u @ vh).to(prototypes.dtype)


def etf_gram(num_classes: int,
             dtype=torch.float32,
             device=None) -> torch.Tensor:
    """Gram matrix of a simplex ETF: ``K/(K-1) I - 1/(K-1) 11^T``."""
    K = num_classes
    eye = torch.eye(K, dtype=dtype, device=device)
    return (K * eye - 1.0) / (K - 1)

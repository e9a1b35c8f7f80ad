"""Neural Collapse metrics (Papyan, Han & Donoho, PNAS 2020), streaming.

For features ``h_i`` (``d``-dim) with labels ``y_i``:

- class means ``mu_k`` over the classes that have at least one sample. ``K``
  below is the number of such *present* classes (absent classes are
  ignored, they do not count as zero means);
- global mean ``mu_G = (1/K) sum_k mu_k`` (the unweighted mean of the class
  means, so class imbalance does not move it);
- within-class covariance
  ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T
  = (1/N) (sum_i h_i h_i^T - sum_k n_k mu_k mu_k^T)``;
- between-class covariance
  ``Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T``.

Metrics (all 0 at perfect collapse, except ``nc3`` which is 1):

- ``nc1 = trace(Sigma_W @ pinv(Sigma_B)) / K`` (within-class variability
  relative to the class-mean spread);
- ``nc2 = mean_{k != k'} |cos(mu_k - mu_G, mu_k' - mu_G) + 1/(K-1)|``
  (distance of the class-mean angles from a simplex ETF);
- ``nc2_equinorm = std_k ||mu_k - mu_G|| / mean_k ||mu_k - mu_G||`` with the
  *population* std (divide by ``K``);
- ``nc3 = mean_k cos(w_k, mu_k - mu_G)`` when a classifier weight ``W``
  (``num_classes x d``, row ``k`` for label ``k``) is given (self-duality
  of classifier and class means).

Everything is accumulated in float64 from three sufficient statistics:
per-class sums (``K x d``), counts (``K``) and the total second moment
``sum_i h_i h_i^T`` (``d x d``), so memory does not grow with ``N`` and
partial results (other batches, other processes) merge by addition.
"""
import warnings
from typing import Dict, Optional

import torch

_KEYS = ('nc1', 'nc2', 'nc2_equinorm')


class NCAccumulator:
    """Streaming sufficient statistics for the Neural Collapse metrics.

    Args:
        num_classes (int, optional): Number of classes. If None the class
            count grows with the largest label seen.
        rtol (float): Relative cut-off of the pseudo-inverse of ``Sigma_B``
            in ``nc1``: eigen-directions with eigenvalue below
            ``rtol * largest`` are treated as its null space. Defaults to
            ``1e-10``.

    The statistics live on the device of the first features given (in
    float64); :meth:`state_dict` returns them as plain tensors (``None``
    before any update) for pickling / cross-process gathering, and
    :meth:`from_state` rebuilds an accumulator.
    """

    def __init__(self, num_classes: Optional[int] = None, rtol: float = 1e-10):
        if num_classes is not None and num_classes < 1:
            raise ValueError(
                f'num_classes must be positive, got {num_classes}.')
        self.num_classes = num_classes
        self.rtol = rtol
        self.sums: Optional[torch.Tensor] = None  # K x d
        self.counts: Optional[torch.Tensor] = None  # K
        self.scatter: Optional[torch.Tensor] = None  # d x d

    # ------------------------------------------------------------------ state
    @property
    def dim(self) -> Optional[int]:
        return None if self.sums is None else self.sums.size(1)

    @property
    def num_samples(self) -> int:
        return 0 if self.counts is None else int(self.counts.sum())

    def _init_stats(self, dim: int, num_rows: int, device) -> None:
        kw = dict(dtype=torch.float64, device=device)
        self.sums = torch.zeros(num_rows, dim, **kw)
        self.counts = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.scatter = torch.zeros(dim, dim, **kw)

    def _grow(self, num_rows: int) -> None:
        extra = num_rows - self.sums.size(0)
        if extra > 0:
            self.sums = torch.cat(
                [self.sums,
                 self.sums.new_zeros(extra, self.sums.size(1))])
            self.counts = torch.cat(
                [self.counts, self.counts.new_zeros(extra)])

    def _check_labels(self, labels: torch.Tensor) -> None:
        if labels.numel() == 0:
            return
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0:
            raise ValueError(f'Labels must be non-negative, got {lo}.')
        if self.num_classes is not None and hi >= self.num_classes:
            raise ValueError(f'Label {hi} out of range for num_classes='
                             f'{self.num_classes}.')

    @torch.no_grad()
    def update(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: ``feats`` (``N x d``), integer ``labels`` (``N``)."""
        feats = torch.as_tensor(feats)
        labels = torch.as_tensor(labels)
        if feats.dim() != 2:
            raise ValueError(f'feats must be N x d, got {tuple(feats.shape)}.')
        labels = labels.reshape(-1)
        if labels.numel() != feats.size(0):
            raise ValueError(f'Got {feats.size(0)} features but '
                             f'{labels.numel()} labels.')
        if feats.is_floating_point() and not bool(torch.isfinite(feats).all()):
            bad = int((~torch.isfinite(feats)).any(dim=1).sum())
            raise ValueError(
                f'Neural Collapse metrics got NaN/Inf features in {bad} of '
                f'{feats.size(0)} samples: the model (or its checkpoint) has '
                f'diverged. Check its weights; tools/test.py refuses NaN/Inf '
                f'weights by name.')
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError('labels must be integers.')
        self._check_labels(labels)
        if self.sums is None:
            rows = self.num_classes or 0
            self._init_stats(feats.size(1), rows, feats.device)
        elif feats.size(1) != self.dim:
            raise ValueError(f'Feature dim changed: accumulated {self.dim}, '
                             f'got {feats.size(1)}.')
        if feats.size(0) == 0:
            return
        device = self.sums.device
        h = feats.detach().to(device=device, dtype=torch.float64)
        labels = labels.to(device=device, dtype=torch.long)
        self._grow(int(labels.max()) + 1)
        self.sums.index_add_(0, labels, h)
        self.counts += torch.bincount(labels, minlength=self.sums.size(0))
        self.scatter += h.t() @ h

    def merge(self, other: 'NCAccumulator') -> 'NCAccumulator':
        """Add ``other``'s statistics into this accumulator (returns self)."""
        if other.sums is None:
            return self
        if self.sums is None:
            self._init_stats(other.dim, other.sums.size(0), other.sums.device)
        elif other.dim != self.dim:
            raise ValueError(f'Cannot merge accumulators of feature dim '
                             f'{self.dim} and {other.dim}.')
        if self.num_classes is not None and other.num_classes is not None \
                and self.num_classes != other.num_classes:
            raise ValueError(f'Cannot merge accumulators with num_classes '
                             f'{self.num_classes} and {other.num_classes}.')
        if self.num_classes is None:
            self.num_classes = other.num_classes
        if self.num_classes is not None and other.sums.size(
                0) > self.num_classes:
            raise ValueError(f'Merged statistics have {other.sums.size(0)} '
                             f'classes > num_classes={self.num_classes}.')
        device = self.sums.device
        rows = other.sums.size(0)
        self._grow(rows)
        self.sums[:rows] += other.sums.to(device, torch.float64)
        self.counts[:rows] += other.counts.to(device, torch.long)
        self.scatter += other.scatter.to(device, torch.float64)
        return self

    def state_dict(self) -> dict:
        """Plain-tensor state (tensors shared, not copied)."""
        return dict(
            num_classes=self.num_classes,
            rtol=self.rtol,
            sums=self.sums,
            counts=self.counts,
            scatter=self.scatter)

    @classmethod
    def from_state(cls, state: dict) -> 'NCAccumulator':
        """Rebuild an accumulator from :meth:`state_dict` output (copies)."""
        acc = cls(
            num_classes=state.get('num_classes'),
            rtol=state.get('rtol', 1e-10))
        if state.get('sums') is not None:
            acc.sums = state['sums'].clone().to(torch.float64)
            acc.counts = state['counts'].clone().to(torch.long)
            acc.scatter = state['scatter'].clone().to(torch.float64)
        return acc

    # ---------------------------------------------------------------- metrics
    @torch.no_grad()
    def compute(self,
                weight: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """The NC metrics as python floats.

        Returns a dict with ``nc1``, ``nc2``, ``nc2_equinorm`` and, if
        ``weight`` (``num_classes x d``, row ``k`` for label ``k``) is given,
        ``nc3``. With fewer than two present classes the metrics are
        undefined: a warning is issued and NaNs are returned.
        """
        keys = _KEYS + (('nc3', ) if weight is not None else ())
        if weight is not None and not bool(
                torch.isfinite(torch.as_tensor(weight)).all()):
            rows = torch.nonzero(~torch.isfinite(torch.as_tensor(weight)).all(
                dim=1)).flatten().tolist()
            raise ValueError(f'NC3 got a classifier weight with NaN/Inf '
                             f'values in rows {rows[:10]}: the head has '
                             f'diverged or was damaged.')
        if self.sums is None:
            raise ValueError('NCAccumulator.compute() called before any '
                             'update(): there are no features.')
        present = torch.nonzero(self.counts > 0).flatten()
        K = present.numel()
        if K < 2:
            warnings.warn(f'Neural Collapse metrics need at least 2 classes '
                          f'with samples, got {K}; returning NaN.')
            return {k: float('nan') for k in keys}

        n = self.counts[present].to(torch.float64)  # K
        N = n.sum()
        mu = self.sums[present] / n[:, None]  # K x d
        mu_g = mu.mean(dim=0)
        centred = mu - mu_g  # K x d

        # Sigma_W = (sum_i h h^T - sum_k n_k mu_k mu_k^T) / N
        sigma_w = (self.scatter - (mu * n[:, None]).t() @ mu) / N
        sigma_w = 0.5 * (sigma_w + sigma_w.t())
        # pinv(Sigma_B) through the SVD of the K x d centred means:
        # Sigma_B = M^T M / K = V (S^2 / K) V^T.
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        eig = s.square() / K
        keep = eig > self.rtol * eig.max().clamp_min(
            torch.finfo(eig.dtype).tiny)
        v = vh[keep]  # r x d
        # trace(Sigma_W V diag(1/eig) V^T) = sum_j v_j^T Sigma_W v_j / eig_j
        quad = ((v @ sigma_w) * v).sum(dim=1)
        nc1 = (quad / eig[keep]).sum() / K
        nc1 = nc1.clamp_min(0.0)  # round-off can leave a tiny negative

        norms = centred.norm(dim=1)
        unit = centred / norms.clamp_min(1e-300)[:, None]
        cos = unit @ unit.t()
        off = ~torch.eye(K, dtype=torch.bool, device=cos.device)
        nc2 = (cos[off] + 1.0 / (K - 1)).abs().mean()
        mean_norm = norms.mean()
        if mean_norm > 0:
            equinorm = norms.std(unbiased=False) / mean_norm
        else:
            equinorm = torch.tensor(float('nan'), dtype=torch.float64)

        out = dict(
            nc1=float(nc1), nc2=float(nc2), nc2_equinorm=float(equinorm))
        if weight is not None:
            out['nc3'] = self._nc3(weight, present, centred)
        return out

    def _nc3(self, weight, present, centred) -> float:
        weight = torch.as_tensor(weight).detach()
        if weight.dim() != 2 or weight.size(1) != self.dim:
            raise ValueError(f'weight must be num_classes x {self.dim}, got '
                             f'{tuple(weight.shape)}.')
        max_label = int(present.max())
        if weight.size(0) <= max_label:
            raise ValueError(f'weight has {weight.size(0)} rows but label '
                             f'{max_label} occurs.')
        w = weight.to(centred.device, torch.float64)[present]
        w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)
        m = centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-300)
        return float((w * m).sum(dim=1).mean())


def nc_metrics(feats: torch.Tensor,
               labels: torch.Tensor,
               weight: Optional[torch.Tensor] = None,
               num_classes: Optional[int] = None) -> Dict[str, float]:
    """Neural Collapse metrics of ``feats`` (``N x d``) with ``labels``
    (``N``).

    Returns ``nc1``, ``nc2``, ``nc2_equinorm`` (and ``nc3`` if the
    classifier ``weight``, ``num_classes x d``, is given) as python floats;
    see the module docstring for the definitions.
    """
    acc = NCAccumulator(num_classes=num_classes)
    acc.update(feats, labels)
    return acc.compute(weight=weight)

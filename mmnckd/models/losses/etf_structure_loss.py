from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from mmpretrain.registry import MODELS
from torch.distributed.nn.functional import \
    all_reduce as differentiable_all_reduce

from mmnckd.models.utils import etf_gram
from .gram_distance import gram_distance
from .utils import NORM_EPS, check_loss_weight, fp32_context, label_weights


@MODELS.register_module()
class ETFStructureLoss(nn.Module):
    r"""Transfer the teacher's class-mean geometry to the student (NC2).

    **Student class means.** With label weights :math:`y_{ik}` (one-hot for
    hard labels, mixed scores for Mixup / CutMix) and student features
    :math:`z_i`, the batch class means are

    .. math:: m_k = \frac{\sum_i y_{ik} z_i}{\sum_i y_{ik}}

    for the classes present in the batch (:math:`\sum_i y_{ik} > 0`), with
    gradient. (With soft labels every class with a non-zero score counts as
    present; a label-smoothed target would make all classes present.)

    **Memory.** An EMA of the student class means is kept in the persistent
    buffers ``memory`` (``K x feat_dim``, float32) and ``memory_valid``
    (``K``, bool), so they are saved in checkpoints. In every training forward
    (``self.training``), after the loss is computed and without gradient, the
    per-class sums :math:`S_k = \sum_i y_{ik} z_i` and counts
    :math:`n_k = \sum_i y_{ik}` are all-reduced (summed) over the processes
    when ``torch.distributed`` is initialised, and for every class with
    :math:`n_k > 0`:

    * not yet valid: ``memory_k = S_k / n_k``, then marked valid;
    * valid: ``memory_k = momentum * memory_k + (1 - momentum) * S_k / n_k``.

    So all ranks hold an identical memory (every rank must call ``forward`` in
    every training iteration, as the collective is always issued in
    distributed training). The memory is never updated in eval mode.
    With ``momentum=0`` the loss is batch-only: the memory is still updated
    (it then holds the last global batch mean of each class) but is *not*
    used in the loss.

    **Valid set.** :math:`V` = classes present in the batch (batch means,
    with gradient) :math:`\cup` classes with a valid memory (memory values,
    detached; only when ``momentum > 0``). Batch means take precedence for
    the classes present. Classes are kept in increasing index order. If
    :math:`|V| < 2` the loss is a zero connected to the graph of ``z``.

    **Gram matrices.** Centre over :math:`V`:
    :math:`c = \frac{1}{|V|}\sum_{k \in V} m_k`,
    :math:`h_k = (m_k - c) / \|m_k - c\|`, :math:`G_s = H H^T`
    (:math:`|V| \times |V|`). The target is

    * ``target='teacher'``: :math:`G_t = P_V P_V^T` with :math:`P` the given
      prototypes (``K x feat_dim``, centred over all ``K`` classes and
      unit-norm, as produced by the teacher; used as given and detached);
    * ``target='etf'``: the simplex-ETF Gram
      :math:`\frac{K}{K-1} I - \frac{1}{K-1} 11^T` restricted to rows and
      columns in :math:`V` (``prototypes`` may be ``None``).

    Note that the target is centred over all ``K`` classes while :math:`G_s`
    is centred over :math:`V`; they agree once :math:`V` covers all classes
    (which the memory ensures after a few iterations). A batch-only loss
    (``momentum=0``) with partial class coverage has a non-zero floor.

    **Loss.**

    .. math::

        L = w \cdot \|G_s - G_t\|_F^2 / |V|^2 \quad (reduction='mean'),
        \qquad
        L = w \cdot \|G_s - G_t\|_F^2 / |V| \quad (reduction='row\_sum')

    with ``w = loss_weight``. Computed in float32; zero-norm centred means are
    normalised with a small ``eps`` (no NaN). The full ``K x K`` target Gram
    is cached (recomputed when the prototypes change) and the distance uses
    :func:`~mmnckd.models.losses.gram_distance.gram_distance`, whose
    backward is one matrix product: at ``K = 1000``, ``d = 2048`` that is 2
    large products per step instead of 4 (``.dev_scripts/benchmark/cost.py``).

    Args:
        num_classes (int): the number of classes ``K``.
        feat_dim (int): the dimension of ``z`` (and of the prototypes).
        loss_weight (float): Defaults to 1.0.
        momentum (float): EMA momentum of the memory in ``[0, 1]``; 0 means
            batch-only. Defaults to 0.9.
        target (str): ``'teacher'`` or ``'etf'``. Defaults to ``'teacher'``.
        reduction (str): ``'mean'`` or ``'row_sum'``. Defaults to ``'mean'``.
        global_batch (bool): In distributed training, compute the batch
            class means from the per-class sums and counts of *all*
            processes (a differentiable all-reduce), so that every process
            computes the NC2 loss of the global batch, as one process with
            the whole batch would; DDP's gradient averaging then gives the
            one-process gradient. False: each process uses its own batch's
            means (each class then gets only its own process's share of the
            gradient). No effect on one process. Defaults to True.
    """

    TARGETS = ('teacher', 'etf')
    REDUCTIONS = ('mean', 'row_sum')

    def __init__(self,
                 num_classes: int,
                 feat_dim: int,
                 loss_weight: float = 1.0,
                 momentum: float = 0.9,
                 target: str = 'teacher',
                 reduction: str = 'mean',
                 global_batch: bool = True):
        super().__init__()
        if target not in self.TARGETS:
            raise ValueError(
                f'Unknown target {target!r} for ETFStructureLoss; allowed '
                f'values: {list(self.TARGETS)}.')
        if reduction not in self.REDUCTIONS:
            raise ValueError(
                f'Unknown reduction {reduction!r} for ETFStructureLoss; '
                f'allowed values: {list(self.REDUCTIONS)}.')
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f'momentum must be in [0, 1], got {momentum}.')
        if num_classes < 2:
            raise ValueError(
                f'ETFStructureLoss needs num_classes >= 2, got {num_classes}.')
        if feat_dim < 1:
            raise ValueError(f'feat_dim must be >= 1, got {feat_dim}.')
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        # the prototypes' width (None: any, they enter only through P P^T)
        self.prototype_dim = feat_dim
        self.loss_weight = check_loss_weight('ETFStructureLoss', loss_weight)
        self.momentum = momentum
        self.target = target
        self.reduction = reduction
        self.global_batch = global_batch
        self.register_buffer(
            'memory', torch.zeros(num_classes, feat_dim, dtype=torch.float32))
        self.register_buffer('memory_valid',
                             torch.zeros(num_classes, dtype=torch.bool))
        self._gram_cache = None  # (key, K x K target Gram), not saved

    def _check_inputs(self, z: torch.Tensor,
                      prototypes: Optional[torch.Tensor]) -> None:
        if z.dim() != 2 or z.shape[1] != self.feat_dim:
            raise ValueError(
                f'{type(self).__name__} expects features of shape (N, '
                f'feat_dim) = (N, {self.feat_dim}), got {tuple(z.shape)}. '
                f'The distiller sets feat_dim to the width of the features '
                f'the loss takes (the projector\'s out_channels for z, the '
                f'student head\'s in_channels for student_feats); remove a '
                f'hand-set feat_dim / student_feat_dim that differs.')
        if prototypes is None:
            if self.target == 'teacher':
                raise ValueError(
                    "ETFStructureLoss with target='teacher' needs the teacher "
                    'prototypes, got None.')
            return
        expected = (self.num_classes, self.prototype_dim)
        if prototypes.dim() != 2 or any(
                e is not None and e != n
                for e, n in zip(expected, prototypes.shape)):
            raise ValueError(
                f'{type(self).__name__} expects prototypes of shape '
                f'(num_classes, feat_dim) = {expected}, got '
                f'{tuple(prototypes.shape)}.')

    @torch.no_grad()
    def _target_gram(self, prototypes: Optional[torch.Tensor],
                     device: torch.device) -> torch.Tensor:
        """The full ``K x K`` target Gram, cached: the prototypes are fixed
        during training, so ``P P^T`` is recomputed only when they change
        (another tensor, or an in-place update such as a new prototype
        pass)."""
        if self.target == 'teacher':
            key = ('teacher', prototypes.data_ptr(), prototypes._version,
                   prototypes.device, device)
        else:
            key = ('etf', device)
        if self._gram_cache is None or self._gram_cache[0] != key:
            if self.target == 'teacher':
                p = prototypes.detach().to(device, torch.float32)
                gram = p @ p.t()
            else:
                gram = etf_gram(self.num_classes, torch.float32, device)
            self._gram_cache = (key, gram)
        return self._gram_cache[1]

    @torch.no_grad()
    def _update_memory(self,
                       sums: torch.Tensor,
                       counts: torch.Tensor,
                       reduced: bool = False) -> None:
        """EMA update from per-class sums/counts, all-reduced over ranks
        (unless ``reduced``: they already are)."""
        sums = sums.detach().to(self.memory.device, torch.float32)
        counts = counts.detach().to(self.memory.device, torch.float32)
        if dist.is_distributed() and not reduced:  # one collective
            stats = torch.cat([sums, counts[:, None]], dim=1).contiguous()
            dist.all_reduce(stats, op='sum')
            sums, counts = stats[:, :-1], stats[:, -1]
        seen = counts > 0
        if not bool(seen.any()):
            return
        means = sums[seen] / counts[seen, None]
        old = self.memory[seen].float()
        was_valid = self.memory_valid[seen, None]
        new = torch.where(was_valid,
                          self.momentum * old + (1.0 - self.momentum) * means,
                          means)
        self.memory[seen] = new.to(self.memory.dtype)
        self.memory_valid[seen] = True

    def forward(self,
                z: torch.Tensor,
                labels: torch.Tensor,
                prototypes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            z (Tensor): student projected features, ``(N, feat_dim)``.
            labels (Tensor): hard labels ``(N,)`` or soft scores ``(N, K)``.
            prototypes (Tensor, optional): teacher class prototypes
                ``(num_classes, feat_dim)``; required for
                ``target='teacher'``.

        Returns:
            Tensor: the scalar loss (float32).
        """
        self._check_inputs(z, prototypes)
        weights = label_weights(labels, self.num_classes).to(z.device)
        if weights.shape[0] != z.shape[0]:
            raise ValueError(
                f'Got {z.shape[0]} features but {weights.shape[0]} labels.')

        with fp32_context(z.device):
            zf = z.float()
            sums = weights.t() @ zf  # (K, d)
            counts = weights.sum(dim=0)  # (K,)
            reduced = (
                self.training and self.global_batch and dist.is_distributed())
            if reduced:  # the global batch's sums, with gradient
                stats = differentiable_all_reduce(
                    torch.cat([sums, counts[:, None]], dim=1).contiguous())
                sums, counts = stats[:, :-1], stats[:, -1]
            present = counts > 0
            batch_means = sums / counts.clamp_min(1e-12)[:, None]

            valid = present
            means = batch_means
            if self.momentum > 0:
                mem_valid = self.memory_valid.to(z.device)
                valid = present | mem_valid
                memory = self.memory.detach().to(z.device, torch.float32)
                means = torch.where(present[:, None], batch_means, memory)
            idx = valid.nonzero(as_tuple=True)[0]
            num_valid = idx.numel()

            if num_valid < 2:
                loss = zf.sum() * 0.0
            else:
                m = means[idx]
                h = F.normalize(
                    m - m.mean(dim=0, keepdim=True), dim=1, eps=NORM_EPS)
                gram_t = self._target_gram(prototypes, z.device)
                if num_valid < self.num_classes:
                    gram_t = gram_t[idx[:, None], idx]
                sq = gram_distance(h, gram_t)
                denom = num_valid**2 if self.reduction == 'mean' else num_valid
                loss = sq / denom

            if self.training:
                self._update_memory(sums, counts, reduced)
        return self.loss_weight * loss

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from mmpretrain.registry import MODELS

from .contrast_memory import ContrastMemory
from .utils import check_loss_weight, fp32_context


@MODELS.register_module()
class CRDLoss(nn.Module):
    r"""Contrastive representation distillation (Tian, Krishnan, Isola,
    ICLR 2020), the NCE form of the paper and its reference code.

    **Embeddings.** The student's and the teacher's pre-logit features
    :math:`f_i`, :math:`t_i` are mapped by trainable linear layers and
    L2-normalised: :math:`v^s_i = \mathrm{norm}(W_s f_i + b_s)`,
    :math:`v^t_i = \mathrm{norm}(W_t t_i + b_t)` (``embed_dim`` = 128). The
    teacher network stays frozen; its embedding :math:`W_t, b_t` is trained.

    **Memory.** :class:`ContrastMemory` keeps one embedding per training
    sample for each side, :math:`M^s, M^t \in R^{N \times d}`; row ``i``
    belongs to the sample whose ``sample_idx`` is ``i``.

    **Scores.** For sample :math:`i` of the batch the candidates are
    :math:`c_{i0} = i` (the positive) and :math:`K` negatives
    :math:`c_{i1..iK}` drawn uniformly *with replacement* from
    :math:`[0, N)` (so :math:`K > N` works on small data; a negative may be
    the sample itself, as in the reference's uniform sampler). The student
    anchor is scored against the teacher memory and the teacher anchor
    against the student memory:

    .. math::

        P^s_{ij} = \exp(v^s_i \cdot M^t_{c_{ij}} / T) / Z_s, \qquad
        P^t_{ij} = \exp(v^t_i \cdot M^s_{c_{ij}} / T) / Z_t

    The normalising constants are estimated once, from the first training
    batch, as in the reference code: :math:`Z = N \cdot \mathrm{mean}_{ij}
    \exp(\cdot / T)` over the batch's :math:`B (K + 1)` scores (averaged over
    all ranks in distributed training), and then kept fixed in the
    persistent buffer ``normaliser`` (``[Z_s, Z_t]``, -1 until set; saved in
    checkpoints). An eval-mode call before that uses its own batch estimate
    without storing it.

    **NCE loss.** With the noise ratio :math:`K/N` (negatives drawn from the
    uniform distribution :math:`1/N`, ``K`` per positive) the probability
    that a pair comes from the data is :math:`h = P / (P + K/N)`, and

    .. math::

        L_{side} = -\frac{1}{B} \sum_i \Big[
            \log \frac{P_{i0}}{P_{i0} + K/N + \epsilon}
            + \sum_{j=1}^{K} \log \frac{K/N}{P_{ij} + K/N + \epsilon}\Big]

    (``epsilon`` = 1e-7 as in the reference). The loss is
    ``loss_weight * (L_s + L_t)``; CRD alone is cross-entropy 1.0 plus this
    with ``loss_weight`` 0.8 (RepDistiller / mdistiller). Computed in
    float32 with autocast disabled.

    **Memory update.** In training mode, after the loss, the batch's
    indices and (detached) embeddings are gathered from all ranks and both
    memories are updated with ``momentum`` (:class:`ContrastMemory`), so
    every rank holds the same memory. The gather happens *before* the loss,
    so an out-of-range index on any rank stops every rank with the same
    error. Every rank must call ``forward`` in every training iteration.

    **Indices.** ``sample_idx`` must number the training samples
    ``0 .. N-1`` (mmengine's ``BaseDataset`` does, also for an ``indices=``
    subset; with ``RepeatDataset`` use the inner dataset's length). An index
    ``>= num_samples`` is an error; a ``num_samples`` larger than the
    training set leaves rows that never get updated and keep being drawn as
    negatives, so set it to ``len(train_dataloader.dataset)``.
    ``ConcatDataset`` restarts the index in each part: not supported.

    Args:
        num_samples (int): ``N``, the number of training samples.
        student_feat_dim (int): the student's pre-logit dim (filled in by
            the distiller).
        teacher_feat_dim (int): the teacher's pre-logit dim (filled in by
            the distiller).
        embed_dim (int): ``d``. Defaults to 128.
        num_negatives (int): ``K``. Defaults to 16384.
        temperature (float): ``T``. Defaults to 0.07.
        momentum (float): memory momentum. Defaults to 0.5.
        eps (float): ``epsilon``. Defaults to 1e-7.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 num_samples: int,
                 student_feat_dim: int,
                 teacher_feat_dim: int,
                 embed_dim: int = 128,
                 num_negatives: int = 16384,
                 temperature: float = 0.07,
                 momentum: float = 0.5,
                 eps: float = 1e-7,
                 loss_weight: float = 1.0):
        super().__init__()
        if num_negatives < 1:
            raise ValueError(
                f'num_negatives must be >= 1, got {num_negatives}.')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}.')
        self.num_samples = num_samples
        self.num_negatives = num_negatives
        self.temperature = temperature
        self.eps = eps
        self.loss_weight = check_loss_weight('CRDLoss', loss_weight)
        self.embed_s = nn.Linear(student_feat_dim, embed_dim)
        self.embed_t = nn.Linear(teacher_feat_dim, embed_dim)
        self.memory = ContrastMemory(num_samples, embed_dim, momentum)
        self.register_buffer('normaliser', torch.full((2, ), -1.0))

    def _check_inputs(self, student_feats, teacher_feats, sample_idx):
        for name, x, layer in (('student_feats', student_feats, self.embed_s),
                               ('teacher_feats', teacher_feats, self.embed_t)):
            if x.dim() != 2 or x.shape[1] != layer.in_features:
                raise ValueError(
                    f'CRDLoss expects {name} of shape (N, '
                    f'{layer.in_features}), got {tuple(x.shape)}: set '
                    f'{name[:7]}_feat_dim of the loss to the {name[:7]}\'s '
                    f'pre-logit dim.')
        if sample_idx is None:
            raise ValueError('CRDLoss needs sample_idx (each sample\'s '
                             'training-set index), got None.')
        if sample_idx.shape != (student_feats.shape[0], ):
            raise ValueError(
                f'CRDLoss expects one sample_idx per sample, shape '
                f'({student_feats.shape[0]},), got '
                f'{tuple(sample_idx.shape)}.')

    def _normalisers(self, e_s: torch.Tensor, e_t: torch.Tensor):
        """``(Z_s, Z_t)``: stored, or estimated from this batch (and stored
        when training)."""
        if bool((self.normaliser > 0).all()):
            return self.normaliser[0], self.normaliser[1]
        stats = torch.stack([
            e_s.detach().double().sum(),
            e_t.detach().double().sum(),
            torch.tensor(e_s.numel(), dtype=torch.float64, device=e_s.device)
        ])
        if self.training and dist.is_distributed():
            dist.all_reduce(stats, op='sum')
        z = (stats[:2] / stats[2] * self.num_samples).float()
        if self.training:
            self.normaliser.copy_(z.to(self.normaliser.device))
        return z[0], z[1]

    def nce(self, p: torch.Tensor) -> torch.Tensor:
        """``L_side`` of ``(B, K + 1)`` normalised scores, column 0 the
        positive."""
        noise = self.num_negatives / self.num_samples
        pos = torch.log(p[:, 0] / (p[:, 0] + noise + self.eps))
        neg = torch.log(noise / (p[:, 1:] + noise + self.eps)).sum(dim=1)
        return -(pos + neg).mean()

    def forward(self,
                student_feats: torch.Tensor,
                teacher_feats: torch.Tensor,
                sample_idx: torch.Tensor,
                negative_idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            student_feats (Tensor): ``(B, student_feat_dim)``.
            teacher_feats (Tensor): ``(B, teacher_feat_dim)`` (detached).
            sample_idx (Tensor): ``(B,)`` training-set indices.
            negative_idx (Tensor, optional): ``(B, K)`` negatives to use
                instead of drawing them (tests, reproducibility).

        Returns:
            Tensor: the scalar loss (float32).
        """
        self._check_inputs(student_feats, teacher_feats, sample_idx)
        idx = sample_idx.to(student_feats.device).long()
        with fp32_context(student_feats.device):
            v_s = F.normalize(
                self.embed_s(student_feats.float()), dim=1, eps=1e-12)
            v_t = F.normalize(
                self.embed_t(teacher_feats.detach().float()), dim=1, eps=1e-12)
            if self.training:  # all ranks' rows, before any may raise
                gathered = self.memory.gather(idx, v_s, v_t)
                self.memory.check_indices(gathered[0])
            else:
                self.memory.check_indices(idx)
            if negative_idx is None:
                negative_idx = torch.randint(
                    self.num_samples, (idx.numel(), self.num_negatives),
                    device=idx.device)
            elif tuple(negative_idx.shape) != (idx.numel(),
                                               self.num_negatives):
                raise ValueError(
                    f'negative_idx must have shape (B, num_negatives) = '
                    f'({idx.numel()}, {self.num_negatives}), got '
                    f'{tuple(negative_idx.shape)}.')
            else:
                self.memory.check_indices(negative_idx)
            cand = torch.cat([idx[:, None], negative_idx.to(idx)], dim=1)
            cand = cand.to(self.memory.student.device)
            w_t = self.memory.teacher[cand].to(v_s.device)  # (B, K + 1, d)
            w_s = self.memory.student[cand].to(v_t.device)
            e_s = torch.exp(
                torch.bmm(w_t, v_s[:, :, None]).squeeze(2) / self.temperature)
            e_t = torch.exp(
                torch.bmm(w_s, v_t[:, :, None]).squeeze(2) / self.temperature)
            z_s, z_t = self._normalisers(e_s, e_t)
            loss = self.nce(e_s / z_s) + self.nce(e_t / z_t)
            if self.training:
                self.memory.update(*gathered)
        return self.loss_weight * loss

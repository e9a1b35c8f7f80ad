from typing import Optional

import torch
from mmpretrain.registry import MODELS

from .etf_structure_loss import ETFStructureLoss


@MODELS.register_module()
class PreLogitStructureLoss(ETFStructureLoss):
    r"""NC2 on the student's own pre-logit features, before any projector.

    The same loss as :class:`ETFStructureLoss` (batch and memory class means
    :math:`m_k`, centred and normalised to :math:`h_k`, and

    .. math:: L = w \cdot \|H H^T - G_t\|_F^2 / |V|^2

    with :math:`G_t = P P^T` from the teacher prototypes, or the simplex-ETF
    Gram), computed on the features ``f`` that the student's head sees
    (``student_feats``, width ``student_feat_dim``) instead of the projected
    ``z``. A Gram matrix is ``K x K`` whatever the feature width, so the
    teacher's ``K x d_t`` prototypes give the target for a ``d_s``-wide
    student without a projector: no learnable layer stands between the loss
    and the student's representation that could satisfy the loss in its
    place.

    If ``d_s < K - 1`` the student's centred class means have rank at most
    ``d_s`` and cannot reach a rank ``K - 1`` target: the loss then has a
    non-zero floor and pulls the means towards the closest Gram of that rank.

    Args:
        num_classes (int): the number of classes ``K``.
        student_feat_dim (int): the student's pre-logit width ``d_s``
            (filled in by the distiller).
        **kwargs: ``loss_weight``, ``momentum``, ``target``, ``reduction``,
            ``global_batch`` as in :class:`ETFStructureLoss`.
    """

    def __init__(self, num_classes: int, student_feat_dim: int, **kwargs):
        super().__init__(
            num_classes=num_classes, feat_dim=student_feat_dim, **kwargs)
        # P enters only through P P^T, so the teacher's width d_t will do
        self.prototype_dim = None

    def forward(self,
                student_feats: torch.Tensor,
                labels: torch.Tensor,
                prototypes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            student_feats (Tensor): the student's pre-logit features
                ``(N, student_feat_dim)``.
            labels (Tensor): hard labels ``(N,)`` or soft scores ``(N, K)``.
            prototypes (Tensor, optional): teacher class prototypes
                ``(num_classes, d_t)``; required for ``target='teacher'``.

        Returns:
            Tensor: the scalar loss (float32).
        """
        return super().forward(student_feats, labels, prototypes)

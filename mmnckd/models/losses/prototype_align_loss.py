import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from .utils import NORM_EPS, check_loss_weight, fp32_context, label_weights


@MODELS.register_module()
class PrototypeAlignLoss(nn.Module):
    r"""Align student features with the teacher's class prototypes (NC1).

    With student projected features :math:`z_i \in R^d`, teacher class
    prototypes :math:`P = [p_1, ..., p_K] \in R^{K \times d}` (centred over
    the classes and unit-norm, treated as constants) and label weights
    :math:`y_{ik}` (one-hot for hard labels, the mixed scores for
    Mixup / CutMix soft labels):

    .. math::

        L_{align} = \frac{1}{N} \sum_i \sum_k y_{ik} (1 - \cos(z_i, p_k))

    which for hard labels is
    :math:`\frac{1}{N}\sum_i (1 - \cos(z_i, p_{y_i}))`.
    An optional prototype-contrastive term is a cross entropy over the cosine
    similarities to all prototypes (soft-target cross entropy for soft
    labels):

    .. math::

        L_{con} = \frac{1}{N} \sum_i -\sum_k y_{ik}
                  \log \mathrm{softmax}_k(\cos(z_i, P) / \tau)

    and the loss is
    ``loss_weight * (L_align + contrast_weight * L_con)``.

    Computed in float32 (inputs are cast up, autocast is disabled inside).
    Features and prototypes are L2-normalised with ``F.normalize`` (small
    ``eps``), so a zero-norm feature has cosine 0 with every prototype
    instead of producing NaN. The prototypes are detached.

    Args:
        loss_weight (float): weight of the whole loss. Defaults to 1.0.
        contrast_weight (float): weight of :math:`L_{con}`; 0 disables it.
            Defaults to 0.0.
        tau (float): temperature of the contrastive term. Defaults to 0.1.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 contrast_weight: float = 0.0,
                 tau: float = 0.1):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}.')
        if contrast_weight < 0:
            raise ValueError(
                f'contrast_weight must be >= 0, got {contrast_weight}.')
        self.loss_weight = check_loss_weight('PrototypeAlignLoss', loss_weight)
        self.contrast_weight = contrast_weight
        self.tau = tau

    def forward(self, z: torch.Tensor, labels: torch.Tensor,
                prototypes: torch.Tensor) -> torch.Tensor:
        """
        Args:
            z (Tensor): student projected features, ``(N, d)``.
            labels (Tensor): hard labels ``(N,)`` or soft scores ``(N, K)``.
            prototypes (Tensor): teacher class prototypes ``(K, d)``.

        Returns:
            Tensor: the scalar loss (float32).
        """
        if z.dim() != 2:
            raise ValueError(
                f'PrototypeAlignLoss expects features of shape (N, d), got '
                f'{tuple(z.shape)}.')
        if prototypes.dim() != 2:
            raise ValueError(
                'PrototypeAlignLoss expects prototypes of shape (K, d), got '
                f'{tuple(prototypes.shape)}.')
        if z.shape[1] != prototypes.shape[1]:
            raise ValueError(
                f'Student feature dim {z.shape[1]} does not match the teacher '
                f'prototype dim {prototypes.shape[1]}: the projector\'s '
                'out_channels must equal the teacher feature dim.')
        num_classes = prototypes.shape[0]
        weights = label_weights(labels, num_classes).to(z.device)
        if weights.shape[0] != z.shape[0]:
            raise ValueError(
                f'Got {z.shape[0]} features but {weights.shape[0]} labels.')

        with fp32_context(z.device):
            zn = F.normalize(z.float(), dim=1, eps=NORM_EPS)
            pn = F.normalize(prototypes.detach().float(), dim=1, eps=NORM_EPS)
            cos = zn @ pn.t()  # (N, K)
            loss = (weights * (1.0 - cos)).sum(dim=1).mean()
            if self.contrast_weight > 0:
                log_prob = F.log_softmax(cos / self.tau, dim=1)
                con = -(weights * log_prob).sum(dim=1).mean()
                loss = loss + self.contrast_weight * con
        return self.loss_weight * loss

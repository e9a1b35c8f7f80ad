from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from .utils import check_loss_weight, fp32_context, label_weights

# What the reference implementation subtracts from the target logit (after
# dividing by tau) to remove it from the non-target softmax.
_MASK_VALUE = 1000.0


@MODELS.register_module()
class DKDLoss(nn.Module):
    r"""Decoupled knowledge distillation (Zhao et al., CVPR 2022).

    Let :math:`g_i` be the target class of sample :math:`i` (the hard label,
    or the argmax of soft label scores, e.g. from Mixup / CutMix),
    :math:`p_i = \mathrm{softmax}(s_i/\tau)` and
    :math:`q_i = \mathrm{softmax}(t_i/\tau)` the student and (detached)
    teacher probabilities at temperature :math:`\tau`.

    * TCKD, target-class KD: KL between the binary distributions
      :math:`b^q_i = [q_{i g_i}, 1 - q_{i g_i}]` and
      :math:`b^p_i = [p_{i g_i}, 1 - p_{i g_i}]`:

      .. math:: TCKD = \frac{\tau^2}{N} \sum_i KL(b^q_i \,\|\, b^p_i)

    * NTKD, non-target-class KD (DKD's paper calls it "NCKD", a name this
      package keeps for Neural-Collapse KD): KL between the distributions
      over the
      non-target classes, :math:`\hat q_i = \mathrm{softmax}(t_i/\tau -
      1000\, e_{g_i})` and :math:`\hat p_i = \mathrm{softmax}(s_i/\tau -
      1000\, e_{g_i})` (the target logit is pushed down by 1000, as in the
      reference code, so its probability is 0 in float32):

      .. math:: NTKD = \frac{\tau^2}{N} \sum_i KL(\hat q_i \,\|\, \hat p_i)

    Each KL is summed over the classes and *averaged* over the batch, as
    mdistiller does and as mmrazor's ``DKDLoss`` does with its default
    ``reduction='batchmean'``; with ``reduction='mean'`` (the setting of
    mmrazor's shipped DKD config) mmrazor's loss is ``N`` times larger. For a
    (near) one-hot student mmrazor's ``log`` of the binary probabilities gives
    ``inf``, where this implementation stays finite (below). The returned
    loss is

    .. math::

        L = w \cdot \min\left(\frac{e + 1}{E_{warm}}, 1\right)
            (\alpha\, TCKD + \beta\, NTKD)

    with ``w = loss_weight``, ``e`` the 0-based current epoch and
    ``E_warm = warmup_epochs``: the factor is ``1/E_warm`` during the first
    epoch and reaches 1 at epoch ``E_warm - 1``. With ``epoch=None`` or
    ``warmup_epochs=0`` the factor is 1. Under an ``IterBasedTrainLoop`` the
    distillers pass the number of completed passes over the training set as
    ``epoch`` (``EpochInfoHook``, in mmnckd's default runtime).

    :math:`\log(1 - p_{g})` is computed as a log-sum-exp over the non-target
    logits, so a (near) one-hot student does not give ``log(0)``. Computed in
    float32.

    Args:
        alpha (float): weight of TCKD. Defaults to 1.0.
        beta (float): weight of NTKD. Defaults to 8.0.
        tau (float): temperature. Defaults to 4.0.
        warmup_epochs (int): linear warm-up length in epochs; 0 disables it.
            Defaults to 20.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 tau: float = 4.0,
                 warmup_epochs: int = 20,
                 loss_weight: float = 1.0):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}.')
        if warmup_epochs < 0:
            raise ValueError(
                f'warmup_epochs must be >= 0, got {warmup_epochs}.')
        self.alpha = alpha
        self.beta = beta
        self.tau = tau
        self.warmup_epochs = warmup_epochs
        self.loss_weight = check_loss_weight('DKDLoss', loss_weight)

    def warmup_factor(self, epoch: Optional[int]) -> float:
        """``min((epoch + 1) / warmup_epochs, 1)``; 1 if disabled/unknown."""
        if epoch is None or self.warmup_epochs == 0:
            return 1.0
        return min((epoch + 1) / self.warmup_epochs, 1.0)

    @staticmethod
    def _binary_log_probs(logits: torch.Tensor,
                          gt_mask: torch.Tensor) -> torch.Tensor:
        """``log [p_target, 1 - p_target]`` as an ``(N, 2)`` tensor."""
        log_z = torch.logsumexp(logits, dim=1)
        log_target = (logits * gt_mask).sum(dim=1) - log_z
        log_other = torch.logsumexp(
            logits.masked_fill(gt_mask.bool(), float('-inf')), dim=1) - log_z
        return torch.stack([log_target, log_other], dim=1)

    def forward(self,
                student_logits: torch.Tensor,
                teacher_logits: torch.Tensor,
                labels: torch.Tensor,
                epoch: Optional[int] = None) -> torch.Tensor:
        if student_logits.dim() != 2 or \
                student_logits.shape != teacher_logits.shape:
            raise ValueError(
                'DKDLoss expects student and teacher logits of the same shape '
                f'(N, K), got student {tuple(student_logits.shape)} and '
                f'teacher {tuple(teacher_logits.shape)}.')
        num, num_classes = student_logits.shape
        if num_classes < 2:
            raise ValueError(
                f'DKDLoss needs at least 2 classes, got {num_classes}.')
        weights = label_weights(labels, num_classes).to(student_logits.device)
        if weights.shape[0] != num:
            raise ValueError(
                f'Got {num} logits but {weights.shape[0]} labels.')
        target = weights.argmax(dim=1)
        gt_mask = F.one_hot(target, num_classes).float()

        with fp32_context(student_logits.device):
            s = student_logits.float() / self.tau
            t = teacher_logits.detach().float() / self.tau

            # TCKD: binary target / non-target distributions.
            log_bs = self._binary_log_probs(s, gt_mask)
            bt = self._binary_log_probs(t, gt_mask).exp()
            tckd = F.kl_div(log_bs, bt, reduction='none').sum(1).mean()

            # NTKD: distributions over the non-target classes.
            log_ps = F.log_softmax(s - _MASK_VALUE * gt_mask, dim=1)
            pt = F.softmax(t - _MASK_VALUE * gt_mask, dim=1)
            ntkd = F.kl_div(log_ps, pt, reduction='none').sum(1).mean()

            loss = (self.alpha * tckd + self.beta * ntkd) * self.tau**2
        return self.loss_weight * self.warmup_factor(epoch) * loss

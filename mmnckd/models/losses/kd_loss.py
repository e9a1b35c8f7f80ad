import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from .utils import check_loss_weight, fp32_context


@MODELS.register_module()
class KDLoss(nn.Module):
    r"""Hinton knowledge distillation (vanilla KD).

    With student logits :math:`s_i`, teacher logits :math:`t_i` (detached) and
    temperature :math:`\tau`:

    .. math::

        L = \frac{\tau^2}{N} \sum_i \sum_k q_{ik} (\log q_{ik} - \log p_{ik}),
        \quad q_i = \mathrm{softmax}(t_i / \tau),
        \ p_i = \mathrm{softmax}(s_i / \tau)

    i.e. ``tau^2 * KL(q || p)`` summed over the classes and averaged over the
    batch ("batchmean"), times ``loss_weight``. Computed in float32.

    Args:
        tau (float): temperature. Defaults to 4.0.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self, tau: float = 4.0, loss_weight: float = 1.0):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}.')
        self.tau = tau
        self.loss_weight = check_loss_weight('KDLoss', loss_weight)

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.dim() != 2 or \
                student_logits.shape != teacher_logits.shape:
            raise ValueError(
                'KDLoss expects student and teacher logits of the same shape '
                f'(N, K), got student {tuple(student_logits.shape)} and '
                f'teacher {tuple(teacher_logits.shape)}.')
        with fp32_context(student_logits.device):
            log_p = F.log_softmax(student_logits.float() / self.tau, dim=1)
            log_q = F.log_softmax(
                teacher_logits.detach().float() / self.tau, dim=1)
            kl = F.kl_div(log_p, log_q, reduction='none', log_target=True)
            loss = kl.sum(dim=1).mean() * self.tau**2
        return self.loss_weight * loss

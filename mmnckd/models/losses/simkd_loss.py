import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from .utils import check_loss_weight, fp32_context


@MODELS.register_module()
class SimKDLoss(nn.Module):
    r"""SimKD's feature loss (Chen et al., CVPR 2022, "Knowledge
    Distillation with the Reused Teacher Classifier").

    With :math:`S = g(F_s)` the student's last feature map after the SimKD
    projector (``SimKDNeck``, before its pooling) and :math:`T` the
    teacher's last feature map (detached), both ``(B, C_t, H, W)``:

    .. math::

        L = w \cdot \frac{1}{B C_t H W} \sum_{b,c,h,w} (S - T)^2

    i.e. ``nn.MSELoss()`` (mean over every element), times ``loss_weight``
    ``w``. When the teacher's map is larger than the student's, it is
    average-pooled to the student's size (``adaptive_avg_pool2d``), as the
    reference code does. The reference pools a larger *student* map before
    its projector instead; that is the neck's ``spatial_size`` here, so a
    student map larger than the teacher's is an error naming that setting.
    Computed in float32.

    Args:
        loss_weight (float): Defaults to 1.0 (SimKD's only loss term).
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = check_loss_weight('SimKDLoss', loss_weight)

    def forward(self, student_map: torch.Tensor,
                teacher_map: torch.Tensor) -> torch.Tensor:
        """
        Args:
            student_map (Tensor): ``(B, C_t, H_s, W_s)``, with gradient.
            teacher_map (Tensor): ``(B, C_t, H_t, W_t)``.
        """
        if student_map.dim() != 4 or teacher_map.dim() != 4 or \
                student_map.shape[:2] != teacher_map.shape[:2]:
            raise ValueError(
                f'SimKDLoss expects student and teacher feature maps (B, C, '
                f'H, W) with the same B and C, got student '
                f'{tuple(student_map.shape)} and teacher '
                f'{tuple(teacher_map.shape)}: set the SimKDNeck\'s '
                f'out_channels to the teacher\'s channels.')
        s_size, t_size = student_map.shape[2:], teacher_map.shape[2:]
        if s_size != t_size:
            if s_size[0] > t_size[0] or s_size[1] > t_size[1]:
                raise ValueError(
                    f'The student\'s projected feature map is '
                    f'{tuple(s_size)}, larger than the teacher\'s '
                    f'{tuple(t_size)}: set model.student.neck.spatial_size='
                    f'{tuple(t_size)} (pools the student map before the '
                    f'projector, as SimKD does).')
            teacher_map = F.adaptive_avg_pool2d(teacher_map, s_size)
        with fp32_context(student_map.device):
            loss = F.mse_loss(student_map.float(),
                              teacher_map.detach().float())
        return self.loss_weight * loss

"""SimKDNeck: SimKD's projector on the last feature map, then pooling."""
import copy
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

# the reference code's initialisation
_INIT_CFG = [
    dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu'),
    dict(type='Constant', layer='BatchNorm2d', val=1, bias=0)
]


@MODELS.register_module()
class SimKDNeck(BaseModule):
    """The projector of SimKD (Chen et al., CVPR 2022) as an mmpretrain neck.

    On the backbone's last feature map ``F_s`` (``N x C_s x H x W``), with
    ``m = out_channels // factor``::

        S = ReLU(BN(Conv1x1_{m -> C_t}(ReLU(BN(Conv3x3_{m -> m}(
                ReLU(BN(Conv1x1_{C_s -> m}(F_s)))))))))
        out = GAP(S)                                   # N x C_t

    a bottleneck that narrows to half the teacher's width (``factor=2``)
    in the middle; convolutions without bias, each followed by BatchNorm and
    ReLU, the last one included (as in the SimKD reference code; the
    teacher's last feature map it regresses is a ReLU output too). ``S`` is
    what ``SimKDLoss`` compares with the teacher's feature map; ``out``
    feeds the reused (frozen) teacher classifier, so the student classifies
    exactly as in training at test time, without the teacher.

    When the student's map is larger than the teacher's, SimKD first
    average-pools it to the teacher's size: ``spatial_size`` does that
    (``adaptive_avg_pool2d`` before the projector), also at test time.

    Convolutions are initialised Kaiming-normal (``fan_out``, ReLU) and the
    BatchNorms to weight 1, bias 0, as in the reference code.

    Args:
        in_channels (int): ``C_s``, the student's channels.
        out_channels (int): ``C_t``, the teacher's channels.
        factor (int): The bottleneck width is ``out_channels // factor``.
            Defaults to 2.
        spatial_size (int | tuple, optional): Pool the input map to this
            size first. Defaults to None (keep it).
        init_cfg (dict | list, optional): Defaults to None: the
            initialisation above.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 factor: int = 2,
                 spatial_size: Optional[Union[int, Sequence[int]]] = None,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(
            init_cfg=copy.deepcopy(_INIT_CFG) if init_cfg is
            None else init_cfg)
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(
                f'SimKDNeck needs positive in_channels/out_channels, got '
                f'{in_channels}/{out_channels}.')
        if factor < 1 or out_channels // factor < 1:
            raise ValueError(
                f'SimKDNeck factor must be an int in [1, out_channels='
                f'{out_channels}], got {factor}.')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.factor = factor
        if isinstance(spatial_size, int):
            spatial_size = (spatial_size, spatial_size)
        self.spatial_size = tuple(spatial_size) if spatial_size else None
        mid = out_channels // factor
        self.projector = nn.Sequential(
            nn.Conv2d(in_channels, mid, kernel_size=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``S``: the projected feature map (``N x C_t x H' x W'``)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'SimKDNeck expects a feature map (N, {self.in_channels}, H, '
                f'W), got {tuple(x.shape)}: set in_channels to the '
                f'student backbone\'s last-stage channels.')
        if self.spatial_size is not None:
            x = F.adaptive_avg_pool2d(x, self.spatial_size)
        return self.projector(x)

    def forward(
        self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]
    ) -> Tuple[torch.Tensor]:
        """``(GAP(S),)`` of the last map of ``inputs`` (a backbone's tuple
        or a single map)."""
        x = inputs[-1] if isinstance(inputs, (tuple, list)) else inputs
        return (self.project(x).mean(dim=(2, 3)), )

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'out_channels={self.out_channels}, factor={self.factor}')

"""VGG with BatchNorm for CIFAR, as in the CIFAR-100 KD benchmark (CRD).

Architecture (CRD's ``vgg*_bn`` models, which its tables call vgg8, vgg13,
...; reused by mdistiller):

- five stages; stage ``i`` is a stack of ``conv3x3(bias=True) - BN - ReLU``
  with the widths of its cfg row:

  ========  =====================================================
  vgg8      [64], [128], [256], [512], [512]            (cfg 'S')
  vgg11     [64], [128], [256]*2, [512]*2, [512]*2      (cfg 'A')
  vgg13     [64]*2, [128]*2, [256]*2, [512]*2, [512]*2  (cfg 'B')
  vgg16     [64]*2, [128]*2, [256]*3, [512]*3, [512]*3  (cfg 'D')
  vgg19     [64]*2, [128]*2, [256]*4, [512]*4, [512]*4  (cfg 'E')
  ========  =====================================================

- ``MaxPool2d(2, 2)`` between stages 0-1, 1-2 and 2-3. CRD applies the
  pool between stages 3 and 4 only for 64x64 inputs, so for 32x32 CIFAR
  images the spatial sizes of the stage outputs are 32, 16, 8, 4, 4;
- there are no fully connected hidden layers: CRD pools the last stage
  output to 1x1 (``AdaptiveAvgPool2d``) and classifies with
  ``Linear(512, num_classes)``, i.e. a ``GlobalAveragePooling`` neck plus a
  ``LinearClsHead`` in mmpretrain.

Stage outputs are taken after the ReLU (before the following max-pool).
Each ``conv3x3 - BN - ReLU`` is an mmcv ``ConvModule`` (``layer1.0.conv``,
``layer1.0.bn``, as in mmpretrain's ``VGG``), with the conv bias CRD keeps.
"""
import warnings
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmpretrain.registry import MODELS

from .base_cifar import DEFAULT_INIT_CFG, CIFARBackbone


@MODELS.register_module()
class CIFARVGG(CIFARBackbone):
    """CIFAR VGG-BN backbone of the KD benchmark (see module docstring).

    Args:
        arch (str | Sequence[Sequence[int]]): One of :attr:`arch_settings`
            (``'vgg8'``, ``'vgg11'``, ``'vgg13'``, ``'vgg16'``, ``'vgg19'``)
            or 5 lists of conv widths. Defaults to ``'vgg13'``.
        in_channels (int): Input image channels. Defaults to 3.
        pool_before_last (bool, optional): Whether to max-pool between stages
            3 and 4. ``None`` (default) follows CRD: only when the input
            height is 64.
        out_indices (int | Sequence[int]): Stages (0 ... 4) to return.
            Defaults to ``(4, )``.
        frozen_stages (int): ``-1``: none; ``N >= 0``: the first ``N``
            stages (VGG has no separate stem). Defaults to -1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to
            ``dict(type='ReLU', inplace=True)``.
        norm_eval (bool): Keep BN layers in eval mode. Defaults to False.
        init_cfg (dict | list[dict]): Defaults to Kaiming for convs (bias 0)
            and constant 1 (bias 0) for norm layers.

    Attributes:
        out_channels (int): Width of the last stage (512 for all archs).
    """

    arch_settings = {
        'vgg8': [[64], [128], [256], [512], [512]],
        'vgg11': [[64], [128], [256, 256], [512, 512], [512, 512]],
        'vgg13': [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
        'vgg16': [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512],
                  [512, 512, 512]],
        'vgg19': [[64, 64], [128, 128], [256, 256, 256, 256],
                  [512, 512, 512, 512], [512, 512, 512, 512]],
    }
    stem_names = ()  # VGG has no separate stem

    def __init__(self,
                 arch: Union[str, Sequence[Sequence[int]]] = 'vgg13',
                 in_channels: int = 3,
                 pool_before_last: Optional[bool] = None,
                 out_indices: Union[int, Sequence[int]] = (4, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 init_cfg=DEFAULT_INIT_CFG):
        arch = self._lookup_arch(arch)
        arch = [list(stage) for stage in arch]
        if len(arch) != 5 or not all(arch):
            raise ValueError('arch must have 5 non-empty stages.')
        super().__init__(5, out_indices, frozen_stages, norm_eval, init_cfg)
        self.stage_widths = arch
        self.pool_before_last = pool_before_last

        c_in = in_channels
        for i, widths in enumerate(arch):
            convs = []
            for c_out in widths:
                with warnings.catch_warnings():
                    # CRD's convs keep their bias in front of the BN
                    warnings.filterwarnings('ignore', 'Unnecessary conv bias',
                                            UserWarning)
                    convs.append(
                        ConvModule(
                            c_in,
                            c_out,
                            3,
                            padding=1,
                            bias=True,
                            norm_cfg=norm_cfg,
                            act_cfg=act_cfg))
                c_in = c_out
            self.add_stage(f'layer{i + 1}', nn.Sequential(*convs))
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.out_channels = c_in
        self._freeze_stages()

    def forward(self, x):
        pool_last = self.pool_before_last
        if pool_last is None:
            pool_last = x.shape[2] == 64
        return self.forward_stages(self.forward_stem(x), pool_last=pool_last)

    def forward_stage(self, i, x, pool_last):
        # max-pool before stages 1-3, and before stage 4 if ``pool_last``
        if 0 < i < self.num_stages - 1 or (i == self.num_stages - 1
                                           and pool_last):
            x = self.pool(x)
        return super().forward_stage(i, x)

"""MobileNetV2 for CIFAR as in the CIFAR-100 KD benchmark (CRD's
``mobile_half``, reused by mdistiller as "MobileNetV2").

Architecture (Sandler et al., 2018, with CRD's CIFAR changes):

- stem: ``conv3x3(in_channels -> int(32 * w), stride 2) - BN - ReLU``;
- seven groups of inverted-residual blocks, rows ``(t, c, n, s)``::

      (1, 16, 1, 1), (T, 24, 2, 1), (T, 32, 3, 2), (T, 64, 4, 2),
      (T, 96, 3, 1), (T, 160, 3, 2), (T, 320, 1, 1)

  with output widths ``int(c * w)``; CRD uses expansion ``T = 6`` and keeps
  the second group at stride 1 (ImageNet MobileNetV2 uses 2), so a 32x32
  image gives a 2x2 final map (32 -> 16 -> 16 -> 16 -> 8 -> 4 -> 4 -> 2 -> 2);
- inverted residual: ``conv1x1(expand) - BN - ReLU - dwconv3x3(stride) - BN
  - ReLU - conv1x1(project) - BN``, identity shortcut when stride 1 and the
  width is unchanged. As in CRD the expansion conv is present even for
  ``t = 1`` and the activation is ReLU (not ReLU6);
- last conv: ``conv1x1(-> 1280) - BN - ReLU`` (CRD keeps 1280 channels for
  ``w <= 1`` and uses ``int(1280 * w)`` for ``w > 1``);
- classifier: ``AvgPool - Linear(1280, num_classes)``, i.e. a
  ``GlobalAveragePooling`` neck plus a ``LinearClsHead`` in mmpretrain.

``mobile_half`` is ``w = 0.5``, ``T = 6``. All convs are bias-free.

Every ``conv - BN [- ReLU]`` is an mmcv ``ConvModule`` (``conv``, ``bn``,
``activate``). The blocks are not mmpretrain's ``InvertedResidual``, which
drops the expansion conv for ``t = 1``, and the widths are CRD's
``int(c * w)``, not mmpretrain's ``make_divisible(c * w, 8)`` (e.g. 12, not
16, for ``24 * 0.5``).
"""
from typing import Sequence, Union

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .base_cifar import DEFAULT_INIT_CFG, CIFARBackbone


class CIFARInvertedResidual(BaseModule):
    """Inverted residual block (always with the expansion conv, as CRD).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the depthwise conv.
        expand_ratio (int): Expansion of the hidden width.
        norm_cfg (dict): Norm layer config.
        act_cfg (dict): Activation config (after the expansion and the
            depthwise conv).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 expand_ratio: int,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}.')
        hidden = in_channels * expand_ratio
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            ConvModule(
                in_channels, hidden, 1, norm_cfg=norm_cfg, act_cfg=act_cfg),
            ConvModule(
                hidden,
                hidden,
                3,
                stride,
                1,
                groups=hidden,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg),
            ConvModule(
                hidden, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None))

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_res_connect else out


@MODELS.register_module()
class CIFARMobileNetV2(CIFARBackbone):
    """CIFAR MobileNetV2 backbone of the KD benchmark (module docstring).

    Args:
        widen_factor (float): Width multiplier ``w``. Defaults to 0.5
            (CRD's ``mobile_half``).
        expand_ratio (int): Expansion ``T`` of groups 2-7. Defaults to 6.
        in_channels (int): Input image channels. Defaults to 3.
        stem_stride (int): Stride of the stem conv. Defaults to 2 (CRD).
        out_indices (int | Sequence[int]): Output indices: 0-6 are the seven
            inverted-residual groups, 7 is the final 1x1 conv.
            Defaults to ``(7, )``.
        frozen_stages (int): ``-1``: none; ``N >= 0``: the stem and the first
            ``N`` stages (index order above). Defaults to -1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to
            ``dict(type='ReLU', inplace=True)`` (CRD; not ReLU6).
        norm_eval (bool): Keep BN layers in eval mode. Defaults to False.
        init_cfg (dict | list[dict]): Defaults to Kaiming for convs and
            constant 1 (bias 0) for norm layers.

    Attributes:
        out_channels (int): Width of the final conv (1280 for ``w <= 1``).
    """

    # t (None = expand_ratio), c, n, s
    arch_settings = [[1, 16, 1, 1], [None, 24, 2, 1], [None, 32, 3, 2],
                     [None, 64, 4, 2], [None, 96, 3, 1], [None, 160, 3, 2],
                     [None, 320, 1, 1]]

    def __init__(self,
                 widen_factor: float = 0.5,
                 expand_ratio: int = 6,
                 in_channels: int = 3,
                 stem_stride: int = 2,
                 out_indices: Union[int, Sequence[int]] = (7, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 init_cfg=DEFAULT_INIT_CFG):
        # the inverted-residual groups, then the final 1x1 conv
        super().__init__(
            len(self.arch_settings) + 1, out_indices, frozen_stages, norm_eval,
            init_cfg)
        self.widen_factor = widen_factor
        self.expand_ratio = expand_ratio

        c_in = int(32 * widen_factor)
        self.conv1 = ConvModule(
            in_channels,
            c_in,
            3,
            stem_stride,
            1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        for i, (t, c, n, s) in enumerate(self.arch_settings):
            c_out = int(c * widen_factor)
            self.add_stage(
                f'layer{i + 1}',
                self.make_stage(
                    CIFARInvertedResidual,
                    n,
                    c_in,
                    c_out,
                    s,
                    expand_ratio=expand_ratio if t is None else t,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg))
            c_in = c_out
        self.out_channels = (
            int(1280 * widen_factor) if widen_factor > 1.0 else 1280)
        self.add_stage(
            'conv2',
            ConvModule(
                c_in, self.out_channels, 1, norm_cfg=norm_cfg,
                act_cfg=act_cfg))
        self._freeze_stages()

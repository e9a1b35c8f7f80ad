"""ShuffleNet V1 / V2 for CIFAR as in the CIFAR-100 KD benchmark (CRD's
``ShuffleV1`` and ``ShuffleV2``, reused by mdistiller).

Both use a CIFAR stem ``conv1x1(in_channels -> 24) - BN - ReLU`` (no stride,
no max-pool) and three stages that each start with a stride-2 block, so a
32x32 image gives 16, 8, 4 maps; the classifier is ``AvgPool(4) -
Linear(C, num_classes)``, i.e. a ``GlobalAveragePooling`` neck plus a
``LinearClsHead`` in mmpretrain. All convs are bias-free.

ShuffleNet V1 (Zhang et al., 2018), CRD's ``ShuffleV1``: stage widths
``(240, 480, 960)``, ``(4, 8, 4)`` blocks, ``groups = 3``. Bottleneck unit
with ``mid = out / 4``::

    gconv1x1(groups) - BN - ReLU - channel shuffle - dwconv3x3(stride) - BN
    - ReLU - gconv1x1(groups) - BN

(CRD applies a ReLU after the depthwise BN; the first 1x1 conv of the whole
net is not grouped since it only sees 24 channels). Stride-1 units add the
identity; stride-2 units concatenate with ``AvgPool(3, 2, 1)`` of the input
(so their branch outputs ``stage_width - in_channels``). ReLU after the
merge. Features: 960-d.

ShuffleNet V2 (Ma et al., 2018), CRD's ``ShuffleV2`` (``net_size = 1``):
stage widths ``(116, 232, 464)``, each stage one down-sampling unit followed
by ``(3, 7, 3)`` basic units, then ``conv1x1(464 -> 1024) - BN - ReLU``.

- basic unit: split the channels in halves ``x1, x2``; ``x2`` goes through
  ``conv1x1 - BN - ReLU - dwconv3x3 - BN - conv1x1 - BN - ReLU``; concatenate
  ``[x1, branch]`` and shuffle with 2 groups;
- down-sampling unit (``mid = out / 2``): left ``dwconv3x3(s2) - BN -
  conv1x1(-> mid) - BN - ReLU``, right ``conv1x1(-> mid) - BN - ReLU -
  dwconv3x3(s2) - BN - conv1x1 - BN - ReLU``; concatenate, shuffle.

Features: 1024-d (the final 1x1 conv is output index 3).

Building blocks: every ``conv - BN [- ReLU]`` is an mmcv ``ConvModule``
(``conv``, ``bn``, ``activate``), the shuffle is mmpretrain's
``channel_shuffle``, and both ShuffleNet V2 units are mmpretrain's own
ShuffleNet V2 ``InvertedResidual`` (``branch1`` = left, ``branch2`` =
right / basic branch), which is this exact unit. mmpretrain's ShuffleNet V1
``ShuffleUnit`` is not: it shuffles after the depthwise conv, has no ReLU
there and concatenates in the other order, so the V1 unit is kept here.
"""
from typing import Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_activation_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.shufflenet_v2 import \
    InvertedResidual as ShuffleV2Unit
from mmpretrain.models.utils import channel_shuffle
from mmpretrain.registry import MODELS

from .base_cifar import DEFAULT_INIT_CFG, CIFARBackbone


class ShuffleV1Unit(BaseModule):
    """ShuffleNet V1 bottleneck unit (CRD variant, see module docstring).

    ``conv1`` (grouped 1x1 - BN - act), channel shuffle, ``conv2``
    (depthwise 3x3 - BN - act), ``conv3`` (grouped 1x1 - BN), merge, act.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Channels of the residual branch (for stride 2
            the unit outputs ``in_channels + out_channels``).
        stride (int): 1 (add) or 2 (concat with avg-pooled input).
        groups (int): Groups of the 1x1 convs.
        first_groups (int): Groups of the first 1x1 conv and of the shuffle
            after it (1 for the first unit of the net). Defaults to
            ``groups``.
        norm_cfg (dict): Norm layer config.
        act_cfg (dict): Activation config.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 groups: int,
                 first_groups: int = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}.')
        first_groups = groups if first_groups is None else first_groups
        mid = out_channels // 4
        self.stride = stride
        self.first_groups = first_groups
        self.conv1 = ConvModule(
            in_channels,
            mid,
            1,
            groups=first_groups,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv2 = ConvModule(
            mid,
            mid,
            3,
            stride,
            1,
            groups=mid,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv3 = ConvModule(
            mid,
            out_channels,
            1,
            groups=groups,
            norm_cfg=norm_cfg,
            act_cfg=None)
        self.shortcut = (
            nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None)
        self.relu = build_activation_layer(act_cfg)

    def forward(self, x):
        out = self.conv1(x)
        if self.first_groups > 1:
            out = channel_shuffle(out, self.first_groups)
        out = self.conv3(self.conv2(out))
        if self.stride == 2:
            out = torch.cat([out, self.shortcut(x)], dim=1)
        else:
            out = out + x
        return self.relu(out)


@MODELS.register_module()
class CIFARShuffleNetV1(CIFARBackbone):
    """CIFAR ShuffleNet V1 backbone of the KD benchmark (module docstring).

    Args:
        stage_channels (Sequence[int]): Output widths of the 3 stages.
            Defaults to ``(240, 480, 960)``.
        num_blocks (Sequence[int]): Units per stage. Defaults to
            ``(4, 8, 4)``.
        groups (int): Groups of the pointwise convs. Defaults to 3.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0, 1, 2) to return.
            Defaults to ``(2, )``.
        frozen_stages (int): ``-1``: none; ``N >= 0``: the stem and the first
            ``N`` stages. Defaults to -1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to
            ``dict(type='ReLU', inplace=True)``.
        norm_eval (bool): Keep BN layers in eval mode. Defaults to False.
        init_cfg (dict | list[dict]): Defaults to Kaiming for convs and
            constant 1 (bias 0) for norm layers.

    Attributes:
        out_channels (int): ``stage_channels[-1]`` (960).
    """

    def __init__(self,
                 stage_channels: Sequence[int] = (240, 480, 960),
                 num_blocks: Sequence[int] = (4, 8, 4),
                 groups: int = 3,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (2, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 init_cfg=DEFAULT_INIT_CFG):
        if len(stage_channels) != 3 or len(num_blocks) != 3:
            raise ValueError('stage_channels and num_blocks need 3 entries.')
        super().__init__(3, out_indices, frozen_stages, norm_eval, init_cfg)
        self.conv1 = ConvModule(
            in_channels, 24, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.groups = groups
        c_in = 24
        for i, (c_stage, n) in enumerate(zip(stage_channels, num_blocks)):
            units = []
            for j in range(n):
                units.append(
                    ShuffleV1Unit(
                        c_in,
                        c_stage - c_in if j == 0 else c_stage,
                        stride=2 if j == 0 else 1,
                        groups=groups,
                        first_groups=1 if i == 0 and j == 0 else groups,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg))
                c_in = c_stage
            self.add_stage(f'layer{i + 1}', nn.Sequential(*units))
        self.out_channels = c_in
        self._freeze_stages()


@MODELS.register_module()
class CIFARShuffleNetV2(CIFARBackbone):
    """CIFAR ShuffleNet V2 backbone of the KD benchmark (module docstring).

    Args:
        widen_factor (float): CRD's ``net_size``, one of
            :attr:`arch_settings` (0.5, 1.0, 1.5, 2.0). Defaults to 1.0
            (CRD's ``ShuffleV2``).
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (int | Sequence[int]): 0-2 are the three stages, 3 the
            final 1x1 conv. Defaults to ``(3, )``.
        frozen_stages (int): ``-1``: none; ``N >= 0``: the stem and the first
            ``N`` stages (index order above). Defaults to -1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to
            ``dict(type='ReLU', inplace=True)``.
        norm_eval (bool): Keep BN layers in eval mode. Defaults to False.
        init_cfg (dict | list[dict]): Defaults to Kaiming for convs and
            constant 1 (bias 0) for norm layers.

    Attributes:
        out_channels (int): Width of the final conv (1024 for 1.0).
    """

    # widen_factor: (stage widths + final conv width, basic units per stage)
    arch_settings = {
        0.5: ((48, 96, 192, 1024), (3, 7, 3)),
        1.0: ((116, 232, 464, 1024), (3, 7, 3)),
        1.5: ((176, 352, 704, 1024), (3, 7, 3)),
        2.0: ((224, 488, 976, 2048), (3, 7, 3)),
    }

    def __init__(self,
                 widen_factor: float = 1.0,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 init_cfg=DEFAULT_INIT_CFG):
        if float(widen_factor) not in self.arch_settings:
            raise KeyError(f'widen_factor must be one of '
                           f'{sorted(self.arch_settings)}, '
                           f'got {widen_factor}.')
        widths, num_blocks = self.arch_settings[float(widen_factor)]
        super().__init__(4, out_indices, frozen_stages, norm_eval, init_cfg)
        self.widen_factor = widen_factor
        self.conv1 = ConvModule(
            in_channels, 24, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        c_in = 24
        for i, (c_stage, n) in enumerate(zip(widths[:3], num_blocks)):
            # a down-sampling unit, then n basic units
            units = [
                ShuffleV2Unit(
                    c_in if j == 0 else c_stage,
                    c_stage,
                    stride=2 if j == 0 else 1,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg) for j in range(n + 1)
            ]
            c_in = c_stage
            self.add_stage(f'layer{i + 1}', nn.Sequential(*units))
        self.add_stage(
            'conv2',
            ConvModule(c_in, widths[3], 1, norm_cfg=norm_cfg, act_cfg=act_cfg))
        self.out_channels = widths[3]
        self._freeze_stages()

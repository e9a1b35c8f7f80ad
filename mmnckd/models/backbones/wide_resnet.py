"""Wide ResNets for CIFAR (Zagoruyko & Komodakis, 2016), WRN-d-k.

Architecture (the ``wrn_*`` models of the CIFAR-100 KD benchmark, CRD /
mdistiller):

- stem: ``conv3x3(in_channels -> 16, stride 1)``, no BN/ReLU (pre-activation
  net);
- three stages of ``n = (d - 4) / 6`` pre-activation blocks with widths
  ``16k, 32k, 64k`` and strides ``1, 2, 2``;
- block: ``BN - ReLU - conv3x3(stride) - BN - ReLU - [dropout] - conv3x3``
  added to a shortcut that is the identity when the width is unchanged, and
  otherwise ``conv1x1(stride)`` applied to the *activated* input
  ``ReLU(BN(x))``. All convs are bias-free;
- a final ``BN - ReLU`` after the last stage.

The final ``BN - ReLU`` belongs to the last stage here, so the output of
stage 2 is the activated map and ``GlobalAveragePooling`` +
``Linear(64k, num_classes)`` gives the standard WRN. The outputs of stages
0 and 1 are the raw (pre-activation) sums of their last block.

In a block, ``conv3x3(stride) - BN - ReLU`` is an mmcv ``ConvModule``
(``conv1.conv``, ``conv1.bn``); the leading ``BN - ReLU`` stays separate
(``bn1``) because the projection shortcut reads its output.
"""
from typing import Sequence, Union

import torch.nn as nn
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .base_cifar import DEFAULT_INIT_CFG, CIFARBackbone


class PreActWideBlock(BaseModule):
    """Pre-activation block of a Wide ResNet.

    ``bn1 - act`` (kept apart: the projection shortcut takes its output),
    ``conv1`` = ``ConvModule(conv3x3(stride) - BN - act)``, dropout, then the
    plain ``conv3x3`` ``conv2``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first conv and the shortcut conv.
        drop_rate (float): Dropout probability between the two convs.
        norm_cfg (dict): Norm layer config.
        act_cfg (dict): Activation config.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 drop_rate: float = 0.0,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.bn1 = build_norm_layer(norm_cfg, in_channels)[1]
        self.conv1 = ConvModule(
            in_channels,
            out_channels,
            3,
            stride,
            1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.relu = build_activation_layer(act_cfg)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else None
        # The original WRN only projects when the width changes (a stride-2
        # block with unchanged width cannot occur in WRN-d-k).
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Conv2d(
                in_channels, out_channels, 1, stride, bias=False)
        else:
            self.shortcut = None

    def forward(self, x):
        act = self.relu(self.bn1(x))
        out = self.conv1(act)
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        identity = x if self.shortcut is None else self.shortcut(act)
        return out + identity


@MODELS.register_module()
class CIFARWideResNet(CIFARBackbone):
    """Wide ResNet WRN-d-k backbone for CIFAR (see module docstring).

    Args:
        arch (str | dict): One of :attr:`arch_settings` (``'wrn_16_1'``,
            ``'wrn_16_2'``, ``'wrn_40_1'``, ``'wrn_40_2'``) or a dict with
            keys ``depth`` (``6n + 4``) and ``widen_factor``.
            Defaults to ``'wrn_40_2'``.
        in_channels (int): Input image channels. Defaults to 3.
        drop_rate (float): Dropout inside the blocks. Defaults to 0.
        out_indices (int | Sequence[int]): Stages (0, 1, 2) to return.
            Defaults to ``(2, )``.
        frozen_stages (int): ``-1``: none; ``N >= 0``: the stem and the first
            ``N`` stages (stage 2 includes the final BN). Defaults to -1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to
            ``dict(type='ReLU', inplace=True)``.
        norm_eval (bool): Keep BN layers in eval mode. Defaults to False.
        init_cfg (dict | list[dict]): Defaults to Kaiming for convs and
            constant 1 (bias 0) for norm layers.

    Attributes:
        out_channels (int): ``64 * widen_factor``.
    """

    arch_settings = {
        'wrn_16_1': dict(depth=16, widen_factor=1),
        'wrn_16_2': dict(depth=16, widen_factor=2),
        'wrn_40_1': dict(depth=40, widen_factor=1),
        'wrn_40_2': dict(depth=40, widen_factor=2),
    }
    strides = (1, 2, 2)

    def __init__(self,
                 arch: Union[str, dict] = 'wrn_40_2',
                 in_channels: int = 3,
                 drop_rate: float = 0.0,
                 out_indices: Union[int, Sequence[int]] = (2, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 init_cfg=DEFAULT_INIT_CFG):
        arch = self._lookup_arch(arch, required_key='depth')
        depth = arch['depth']
        k = arch.get('widen_factor', 1)
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f'depth must be 6n + 4 with n >= 1, got {depth}.')
        super().__init__(3, out_indices, frozen_stages, norm_eval, init_cfg)
        self.depth = depth
        self.widen_factor = k
        self.num_blocks = (depth - 4) // 6
        self.widths = (16, 16 * k, 32 * k, 64 * k)

        self.conv1 = nn.Conv2d(
            in_channels, self.widths[0], 3, 1, 1, bias=False)
        for i in range(self.num_stages):
            self.add_stage(
                f'layer{i + 1}',
                self.make_stage(
                    PreActWideBlock,
                    self.num_blocks,
                    self.widths[i],
                    self.widths[i + 1],
                    self.strides[i],
                    drop_rate=drop_rate,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg))
        self.out_channels = self.widths[-1]
        # final BN-ReLU of the pre-activation net (part of the last stage)
        self.bn_final = build_norm_layer(norm_cfg, self.out_channels)[1]
        self.relu = build_activation_layer(act_cfg)
        self._freeze_stages()

    def forward_stage(self, i, x):
        x = super().forward_stage(i, x)
        if i == self.num_stages - 1:
            x = self.relu(self.bn_final(x))
        return x

    def frozen_modules(self):
        modules = super().frozen_modules()
        if self.frozen_stages == self.num_stages:
            modules.append(self.bn_final)
        return modules

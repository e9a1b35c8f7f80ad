"""CIFAR ResNets (He et al., 2016) as used by the CIFAR-100 KD benchmark.

Architecture (the ``resnet*`` models of CRD, Tian et al., ICLR 2020, reused
by mdistiller):

- stem: ``conv3x3(in_channels -> w0, stride 1) - BN - ReLU`` (no max-pool);
- three stages of ``n`` BasicBlocks with widths ``w1, w2, w3`` and strides
  ``1, 2, 2`` (32x32 -> 32, 16, 8);
- BasicBlock: ``conv3x3 - BN - ReLU - conv3x3 - BN`` plus a shortcut that is
  the identity, or ``conv1x1(stride) - BN`` when the stride or the width
  changes; ReLU after the addition. All convs are bias-free.

For depth ``d = 6n + 2`` there are ``n`` blocks per stage. The plain models
(resnet8 ... resnet110) use widths ``[16, 16, 32, 64]`` (stem + 3 stages,
64-d features); the "x4" models (resnet8x4, resnet32x4) use
``[32, 64, 128, 256]`` (256-d features). The classifier of the original
models is ``AvgPool(8) - Linear(w3, num_classes)``, i.e. a
``GlobalAveragePooling`` neck plus a ``LinearClsHead`` in mmpretrain.
"""
from typing import Sequence, Union

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS


class CIFARBasicBlock(BaseModule):
    """Post-activation BasicBlock of the CIFAR ResNets.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first 3x3 conv (and of the projection
            shortcut). Defaults to 1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                build_norm_layer(norm_cfg, out_channels)[1])
        else:
            self.downsample = None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


@MODELS.register_module()
class CIFARResNet(BaseBackbone):
    """CIFAR ResNet backbone of the KD benchmark (see module docstring).

    Args:
        arch (str | dict): One of :attr:`arch_settings` (``'resnet8'``,
            ``'resnet14'``, ``'resnet20'``, ``'resnet32'``, ``'resnet44'``,
            ``'resnet56'``, ``'resnet110'``, ``'resnet8x4'``,
            ``'resnet32x4'``), or a dict with keys ``depth`` (``6n + 2``) and
            ``widths`` (4 ints: stem + 3 stages; defaults to
            ``[16, 16, 32, 64]``). Defaults to ``'resnet32'``.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0, 1, 2; negatives count
            from the end) whose outputs are returned. Defaults to ``(2, )``.
        frozen_stages (int): ``-1``: freeze nothing; ``N >= 0``: freeze the
            stem and the first ``N`` stages (eval mode, no grad).
            Defaults to -1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        norm_eval (bool): Keep all BN layers in eval mode during training.
            Defaults to False.
        zero_init_residual (bool): Zero-init the last BN of each block.
            Defaults to False (CRD does not).
        init_cfg (dict | list[dict]): Defaults to Kaiming for convs and
            constant 1 (bias 0) for norm layers.

    Attributes:
        out_channels (int): Channels of the last stage (the pre-logit dim
            after global average pooling).
    """

    arch_settings = {
        'resnet8': dict(depth=8, widths=(16, 16, 32, 64)),
        'resnet14': dict(depth=14, widths=(16, 16, 32, 64)),
        'resnet20': dict(depth=20, widths=(16, 16, 32, 64)),
        'resnet32': dict(depth=32, widths=(16, 16, 32, 64)),
        'resnet44': dict(depth=44, widths=(16, 16, 32, 64)),
        'resnet56': dict(depth=56, widths=(16, 16, 32, 64)),
        'resnet110': dict(depth=110, widths=(16, 16, 32, 64)),
        'resnet8x4': dict(depth=8, widths=(32, 64, 128, 256)),
        'resnet32x4': dict(depth=32, widths=(32, 64, 128, 256)),
    }
    strides = (1, 2, 2)

    def __init__(self,
                 arch: Union[str, dict] = 'resnet32',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (2, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 zero_init_residual: bool = False,
                 init_cfg=[
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(
                         type='Constant',
                         val=1,
                         layer=['_BatchNorm', 'GroupNorm'])
                 ]):
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise KeyError(f'Unknown arch {arch!r}; choose from '
                               f'{sorted(self.arch_settings)}.')
            arch = self.arch_settings[arch]
        elif not isinstance(arch, dict) or 'depth' not in arch:
            raise TypeError('arch must be a str or a dict with key "depth".')
        depth = arch['depth']
        widths = tuple(arch.get('widths', (16, 16, 32, 64)))
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f'depth must be 6n + 2 with n >= 1, got {depth}.')
        if len(widths) != 4:
            raise ValueError(f'widths must have 4 entries, got {widths}.')
        self.depth = depth
        self.widths = widths
        self.num_blocks = (depth - 2) // 6
        self.num_stages = 3
        self.out_indices = _normalize_indices(out_indices, self.num_stages)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_stages}], got {frozen_stages}.')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual

        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, widths[0])[1]
        self.relu = nn.ReLU(inplace=True)

        self.layers = []
        c_in = widths[0]
        for i in range(self.num_stages):
            c_out = widths[i + 1]
            blocks = []
            for j in range(self.num_blocks):
                blocks.append(
                    CIFARBasicBlock(
                        c_in,
                        c_out,
                        stride=self.strides[i] if j == 0 else 1,
                        norm_cfg=norm_cfg))
                c_in = c_out
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.layers.append(name)
        self.out_channels = widths[-1]
        self._freeze_stages()

    def init_weights(self):
        super().init_weights()
        if (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            return
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, CIFARBasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        modules = []
        if self.frozen_stages >= 0:
            modules += [self.conv1, self.bn1]
        if self.frozen_stages > 0:
            modules += [
                getattr(self, n) for n in self.layers[:self.frozen_stages]
            ]
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def _normalize_indices(out_indices, num_stages: int) -> tuple:
    """Turn an int / sequence of (possibly negative) indices into a sorted
    tuple of valid stage indices."""
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    if not isinstance(out_indices, Sequence) or len(out_indices) == 0:
        raise TypeError('out_indices must be an int or a non-empty sequence '
                        f'of ints, got {out_indices!r}.')
    result = []
    for i in out_indices:
        j = i + num_stages if i < 0 else i
        if not 0 <= j < num_stages:
            raise ValueError(f'Invalid out_index {i} for {num_stages} '
                             'stages.')
        result.append(j)
    return tuple(sorted(set(result)))

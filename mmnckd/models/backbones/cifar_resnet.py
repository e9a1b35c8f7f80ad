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

The blocks and stages are mmpretrain's own ``BasicBlock`` and ``ResLayer``
(which builds exactly this ``conv1x1 - BN`` projection shortcut), and the
stem is the one of mmpretrain's ``ResNet_CIFAR``; only the ``6n + 2`` depths
and the widths differ from mmpretrain's ResNets, so the state-dict keys are
the same (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.bn1``, ...,
``layer2.0.downsample.0/1``).
"""
from typing import Sequence, Union

import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmpretrain.models.backbones.resnet import BasicBlock, ResLayer
from mmpretrain.registry import MODELS

from .base_cifar import DEFAULT_INIT_CFG, CIFARBackbone


@MODELS.register_module()
class CIFARResNet(CIFARBackbone):
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
        act_cfg (dict): Activation config (stem and blocks). Defaults to
            ``dict(type='ReLU', inplace=True)``.
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
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 zero_init_residual: bool = False,
                 init_cfg=DEFAULT_INIT_CFG):
        arch = self._lookup_arch(arch, required_key='depth')
        depth = arch['depth']
        widths = tuple(arch.get('widths', (16, 16, 32, 64)))
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f'depth must be 6n + 2 with n >= 1, got {depth}.')
        if len(widths) != 4:
            raise ValueError(f'widths must have 4 entries, got {widths}.')
        super().__init__(3, out_indices, frozen_stages, norm_eval, init_cfg)
        self.depth = depth
        self.widths = widths
        self.num_blocks = (depth - 2) // 6
        self.zero_init_residual = zero_init_residual

        # stem of mmpretrain's ResNet_CIFAR: conv3x3 - norm1 - act
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(
            norm_cfg, widths[0], postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = build_activation_layer(act_cfg)
        # conv1 - bn1 (or gn1, ...); the activation has no state
        self.stem_names = ('conv1', self.norm1_name)

        for i in range(self.num_stages):
            self.add_stage(
                f'layer{i + 1}',
                ResLayer(
                    BasicBlock,
                    self.num_blocks,
                    widths[i],
                    widths[i + 1],
                    expansion=1,
                    stride=self.strides[i],
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg))
        self.out_channels = widths[-1]
        self._freeze_stages()

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    def init_weights(self):
        super().init_weights()
        if (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            return
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.constant_(m.norm2.weight, 0)

    def forward_stem(self, x):
        return self.relu(self.norm1(self.conv1(x)))

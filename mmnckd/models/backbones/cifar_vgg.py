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
"""
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS

from .cifar_resnet import _normalize_indices


@MODELS.register_module()
class CIFARVGG(BaseBackbone):
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

    def __init__(self,
                 arch: Union[str, Sequence[Sequence[int]]] = 'vgg13',
                 in_channels: int = 3,
                 pool_before_last: Optional[bool] = None,
                 out_indices: Union[int, Sequence[int]] = (4, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
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
        arch = [list(stage) for stage in arch]
        if len(arch) != 5 or not all(arch):
            raise ValueError('arch must have 5 non-empty stages.')
        self.stage_widths = arch
        self.num_stages = 5
        self.pool_before_last = pool_before_last
        self.out_indices = _normalize_indices(out_indices, self.num_stages)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_stages}], got {frozen_stages}.')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.layers = []
        c_in = in_channels
        for i, widths in enumerate(arch):
            convs = []
            for c_out in widths:
                convs += [
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=True),
                    build_norm_layer(norm_cfg, c_out)[1],
                    nn.ReLU(inplace=True)
                ]
                c_in = c_out
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*convs))
            self.layers.append(name)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.out_channels = c_in
        self._freeze_stages()

    def forward(self, x):
        pool_last = self.pool_before_last
        if pool_last is None:
            pool_last = x.shape[2] == 64
        outs = []
        for i, name in enumerate(self.layers):
            if 0 < i < self.num_stages - 1 or (i == self.num_stages - 1
                                               and pool_last):
                x = self.pool(x)
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        for name in self.layers[:max(self.frozen_stages, 0)]:
            m = getattr(self, name)
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

"""Common base of the CIFAR-100 KD-benchmark backbones.

All the CIFAR backbones of this package (ResNet, WRN, VGG, MobileNetV2,
ShuffleNet V1/V2) share the same outer structure: an optional *stem* followed
by a list of named *stages* run in order. :class:`CIFARBackbone` holds what
does not depend on the architecture:

- the default ``init_cfg`` (Kaiming for convs, constant 1 / bias 0 for norm
  layers), :data:`DEFAULT_INIT_CFG`;
- arch-name lookup in the subclass's ``arch_settings``;
- validation of ``out_indices`` (ints, negatives counting from the end) and
  ``frozen_stages`` (``-1 ... num_stages``);
- the forward loop (stem, then each stage, collecting ``out_indices``);
- freezing (``frozen_stages >= 0``: the stem and the first ``N`` stages are
  put in eval mode without gradients) and ``norm_eval`` in :meth:`train`.

A subclass validates its arch, calls ``super().__init__`` with its number of
stages, builds its stem modules (named by :attr:`CIFARBackbone.stem_names`)
and registers its stages with :meth:`CIFARBackbone.add_stage` (stacks of
blocks can be built with :meth:`CIFARBackbone.make_stage`), then calls
``self._freeze_stages()``. Architecture-specific forward or freezing
behaviour goes into the hooks :meth:`forward_stem`, :meth:`forward_stage`
and :meth:`frozen_modules`.

The layers themselves are OpenMMLab building blocks: mmcv's ``ConvModule``
for ``conv - norm [- act]``, ``build_norm_layer`` /
``build_activation_layer`` for the rest, mmpretrain's ``channel_shuffle``,
and mmpretrain's ResNet ``BasicBlock`` / ``ResLayer`` and ShuffleNet V2
``InvertedResidual`` where they are exactly the benchmark's block. Every
backbone takes ``norm_cfg`` (default ``dict(type='BN')``) and ``act_cfg``
(default ``dict(type='ReLU', inplace=True)``). As in mmpretrain's
backbones, ``ConvModule.init_weights`` (Kaiming fan-out for the conv,
constant 1 / bias 0 for the norm, i.e. the scheme of
:data:`DEFAULT_INIT_CFG`) runs after ``init_cfg`` on the ``ConvModule``
direct children of a block or backbone, so a different custom ``init_cfg``
(other than ``Pretrained``) does not reach those convs.
"""
from typing import List, Sequence, Union

import torch.nn as nn
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from mmpretrain.models.backbones.base_backbone import BaseBackbone

DEFAULT_INIT_CFG = [
    dict(type='Kaiming', layer=['Conv2d']),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]


class CIFARBackbone(BaseBackbone):
    """Stem + named stages backbone with ``out_indices`` / freezing logic.

    Args:
        num_stages (int): Number of stages (the valid output indices are
            ``0 ... num_stages - 1``).
        out_indices (int | Sequence[int]): Stages whose outputs are returned
            (negatives count from the end).
        frozen_stages (int): ``-1``: freeze nothing; ``N >= 0``: freeze the
            stem and the first ``N`` stages (eval mode, no grad).
        norm_eval (bool): Keep all BN layers in eval mode during training.
        init_cfg (dict | list[dict]): Initialisation config. Defaults to
            :data:`DEFAULT_INIT_CFG`.

    Attributes:
        layers (list[str]): Names of the stages, in order; filled by
            :meth:`add_stage`.
    """

    #: Names of the stem modules, run in order by the default
    #: :meth:`forward_stem` and frozen when ``frozen_stages >= 0``.
    stem_names = ('conv1', )

    def __init__(self,
                 num_stages: int,
                 out_indices: Union[int, Sequence[int]],
                 frozen_stages: int,
                 norm_eval: bool,
                 init_cfg=DEFAULT_INIT_CFG):
        super().__init__(init_cfg=init_cfg)
        self.num_stages = num_stages
        self.out_indices = _normalize_indices(out_indices, num_stages)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages}.')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.layers = []

    @classmethod
    def _lookup_arch(cls, arch, required_key: str = None):
        """Resolve an arch name through ``cls.arch_settings``.

        Args:
            arch: An arch name (``KeyError`` if unknown) or a custom setting,
                returned as is.
            required_key (str, optional): If given, the (resolved) setting
                must be a dict with this key, else ``TypeError``.
        """
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise KeyError(f'Unknown arch {arch!r}; choose from '
                               f'{sorted(cls.arch_settings)}.')
            arch = cls.arch_settings[arch]
        if required_key is not None and (not isinstance(arch, dict)
                                         or required_key not in arch):
            raise TypeError('arch must be a str or a dict with key '
                            f'"{required_key}".')
        return arch

    @staticmethod
    def make_stage(block, num_blocks: int, in_channels: int, out_channels: int,
                   stride: int, **kwargs) -> nn.Sequential:
        """``num_blocks`` blocks ``block(in, out, stride=..., **kwargs)``:
        the first maps ``in_channels -> out_channels`` with ``stride``, the
        others keep ``out_channels`` with stride 1."""
        return nn.Sequential(*[
            block(
                in_channels if j == 0 else out_channels,
                out_channels,
                stride=stride if j == 0 else 1,
                **kwargs) for j in range(num_blocks)
        ])

    def add_stage(self, name: str, module: nn.Module):
        """Register ``module`` as the next stage under ``name``."""
        self.add_module(name, module)
        self.layers.append(name)

    def stem_modules(self) -> List[nn.Module]:
        """The stem modules (see :attr:`stem_names`)."""
        return [getattr(self, name) for name in self.stem_names]

    def forward_stem(self, x):
        for m in self.stem_modules():
            x = m(x)
        return x

    def forward_stage(self, i: int, x):
        """Run stage ``i``; extra keyword arguments of
        :meth:`forward_stages` are passed on to this hook."""
        return getattr(self, self.layers[i])(x)

    def forward_stages(self, x, **kwargs):
        """Run all stages on the stem output, collect ``out_indices``."""
        outs = []
        for i in range(len(self.layers)):
            x = self.forward_stage(i, x, **kwargs)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def forward(self, x):
        return self.forward_stages(self.forward_stem(x))

    def frozen_modules(self) -> List[nn.Module]:
        """Modules frozen by ``frozen_stages``: the stem and the first
        ``frozen_stages`` stages (none for ``-1``)."""
        if self.frozen_stages < 0:
            return []
        return self.stem_modules() + [
            getattr(self, name) for name in self.layers[:self.frozen_stages]
        ]

    def _freeze_stages(self):
        for m in self.frozen_modules():
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

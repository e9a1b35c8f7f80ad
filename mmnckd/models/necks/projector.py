"""Projection neck: map student features (``d_s``) to the teacher dim
(``d_t``)."""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...utils.single_sample_batches import SINGLE_SAMPLE_FIX, batch_norm_layers
from ..utils.global_batch_norm import GlobalBatchNorm1d

_MODES = ('linear', 'mlp', 'identity')


@MODELS.register_module()
class Projector(BaseModule):
    """Project features to another width.

    Modes:

    - ``'linear'``: ``Linear(in, out) - BatchNorm1d(out)``.
    - ``'mlp'``: ``Linear(in, hidden) - BN - ReLU - Linear(hidden, out) - BN``
      with ``hidden_channels`` defaulting to ``max(2 * in, out)``.
    - ``'identity'``: no-op; needs ``in_channels == out_channels``.

    The linear layers have no bias (each is followed by a BatchNorm, whose
    shift plays that role).

    As an mmpretrain neck it takes a tuple of tensors and returns a tuple
    (each element projected, like ``GlobalAveragePooling``); a plain tensor
    gives a plain tensor. Inputs with more than 2 dims (``N, C, *``, e.g.
    ``N, C, H, W`` backbone maps) are globally average-pooled first, so a
    ``Projector`` can replace ``GlobalAveragePooling`` as the neck of an
    ``ImageClassifier``. BatchNorm in training mode needs more than one
    sample per batch: in training mode a batch of 1 sample raises a
    ``ValueError`` that says so (rather than PyTorch's "Expected more than
    1 value per channel when training"); ``TeacherPrototypeHook`` checks the
    train dataloader for such batches before training starts.

    Args:
        in_channels (int): Input feature dim (``d_s``).
        out_channels (int): Output feature dim (``d_t``).
        hidden_channels (int, optional): Hidden width of ``'mlp'`` mode.
            Ignored by the other modes. Defaults to
            ``max(2 * in_channels, out_channels)``.
        mode (str): One of ``'linear'``, ``'mlp'``, ``'identity'``.
            Defaults to ``'linear'``.
        sync_bn (bool): Normalise over the samples of all processes
            (:class:`GlobalBatchNorm1d`, CPU and GPU) instead of each
            process's own. Same checkpoint keys. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None
            (PyTorch's default initialisation).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 hidden_channels: Optional[int] = None,
                 mode: str = 'linear',
                 sync_bn: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if mode not in _MODES:
            raise ValueError(f'Projector mode must be one of {_MODES}, '
                             f'got {mode!r}.')
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(
                f'Projector needs positive in_channels/out_channels, got '
                f'{in_channels}/{out_channels}.')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.mode = mode
        self.sync_bn = sync_bn
        self.hidden_channels = None
        norm = GlobalBatchNorm1d if sync_bn else nn.BatchNorm1d

        if mode == 'identity':
            if in_channels != out_channels:
                raise ValueError(
                    "Projector mode='identity' needs in_channels == "
                    f'out_channels, got {in_channels} != {out_channels}; use '
                    "mode='linear' or 'mlp' to change the width.")
            self.proj = nn.Identity()
        elif mode == 'linear':
            self.proj = nn.Sequential(
                nn.Linear(in_channels, out_channels, bias=False),
                norm(out_channels))
        else:  # mlp
            if hidden_channels is None:
                hidden_channels = max(2 * in_channels, out_channels)
            if hidden_channels <= 0:
                raise ValueError('Projector hidden_channels must be positive, '
                                 f'got {hidden_channels}.')
            self.hidden_channels = hidden_channels
            self.proj = nn.Sequential(
                nn.Linear(in_channels, hidden_channels, bias=False),
                norm(hidden_channels), nn.ReLU(inplace=True),
                nn.Linear(hidden_channels, out_channels, bias=False),
                norm(out_channels))

    def max_rank(self) -> int:
        """Upper bound on the rank the projected representation can reach.

        Rank here is the dimension of the affine hull of the outputs (the
        rank of the centred feature matrix, which is what the class-mean
        geometry of Neural Collapse lives in; BatchNorm is a per-channel
        affine map and does not raise it):

        - ``'linear'``: ``min(in_channels, out_channels)``;
        - ``'mlp'``: ``min(hidden_channels, out_channels)`` -- the ReLU can
          lift the hidden features up to full ``hidden_channels`` rank
          whatever ``in_channels`` is, and the last linear layer caps it;
        - ``'identity'``: ``in_channels``.

        A ``K``-class simplex ETF needs ``max_rank() >= K - 1``.
        """
        if self.mode == 'linear':
            return min(self.in_channels, self.out_channels)
        if self.mode == 'mlp':
            return min(self.hidden_channels, self.out_channels)
        return self.in_channels

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.flatten(2).mean(dim=2)
        elif x.dim() != 2:
            raise ValueError('Projector expects inputs of shape (N, C) or '
                             f'(N, C, *), got {tuple(x.shape)}.')
        if x.size(1) != self.in_channels:
            raise ValueError(
                f'Projector expects {self.in_channels} input channels, got '
                f'{x.size(1)} (input shape {tuple(x.shape)}).')
        if self.training and x.size(0) == 1 and batch_norm_layers(self):
            raise ValueError(
                f'Projector(mode={self.mode!r}) got a training batch of 1 '
                f'sample (batch size 1, input shape {tuple(x.shape)}): its '
                f'BatchNorm1d cannot train on a single sample ("Expected '
                f'more than 1 value per channel when training"). '
                f'{SINGLE_SAMPLE_FIX}')
        return self.proj(x)

    def forward(
        self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]
    ) -> Union[torch.Tensor, tuple]:
        if isinstance(inputs, torch.Tensor):
            return self._project(inputs)
        if isinstance(inputs, (tuple, list)):
            return tuple(self._project(x) for x in inputs)
        raise TypeError('Projector expects a tensor or a tuple of tensors, '
                        f'got {type(inputs).__name__}.')

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'out_channels={self.out_channels}, mode={self.mode!r}')

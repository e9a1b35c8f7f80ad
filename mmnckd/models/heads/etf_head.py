"""A cosine classifier with a fixed simplex-ETF weight (Neural Collapse NC3).

At the terminal phase of training the last-layer classifier of a network
aligns with its (centred) class means, and those form a simplex ETF
(Papyan et al. 2020, NC2/NC3). :class:`ETFHead` builds that end state in:
the logits are ``s * cos(x, w_k)`` with a *fixed* weight ``W``
(``num_classes x in_channels``, unit rows) that is never trained.

``W`` lives in a persistent buffer named ``weight``: it is saved in (and
restored from) checkpoints, it is moved with ``.to()``/``.cuda()``, and it is
not returned by ``parameters()``, so no optimizer ever sees it.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS

from mmnckd.models.utils import simplex_etf

_EPS = 1e-12


def default_etf_scale(num_classes: int) -> float:
    """The fixed AdaCos scale ``sqrt(2) * ln(K - 1)`` (Zhang et al. 2019).

    The formula vanishes at ``K = 2`` (``ln 1 = 0``) and is tiny for very
    small ``K``; it is therefore floored at its ``K = 3`` value
    ``sqrt(2) * ln 2 ~= 0.98``, which is what ``K = 2`` gets. With
    ``K = 2`` the two ETF prototypes are antipodal, so a perfectly aligned
    feature then gets probability ``sigmoid(2 * 0.98) ~= 0.88``; use
    ``learnable_scale=True`` to let training sharpen it.
    """
    return math.sqrt(2.0) * math.log(max(num_classes - 1, 2))


def peak_etf_scale(num_classes: int, peak: float) -> float:
    """The scale at which a perfectly collapsed feature reaches softmax
    probability ``peak`` on its class.

    A feature on its class's vertex of a ``K``-class simplex ETF has cosine 1
    with its own weight and ``-1/(K-1)`` with the ``K - 1`` others, so its
    probability is ``1 / (1 + (K-1) exp(-s K / (K-1)))``; solving for ``s``:

    .. math:: s = \\frac{K-1}{K} \\ln\\frac{(K-1)\\,peak}{1 - peak}.

    The AdaCos scale ``sqrt(2) ln(K-1)`` keeps that reachable peak at 0.91
    for ``K = 242`` but lets it fall to 0.78 for ``K = 10`` (and 0.62 for
    ``K = 3``): with few classes the cross-entropy never lets go and the
    cosine logits a KD term compares are nearly flat. A fixed ``peak``
    keeps the same reachable confidence at every ``K``.
    """
    if not 0.0 < peak < 1.0:
        raise ValueError(f'peak must be in (0, 1), got {peak}.')
    if peak <= 1.0 / num_classes:
        raise ValueError(f'peak={peak} is not above chance 1/K = '
                         f'{1.0 / num_classes:.4f} for K={num_classes}.')
    k = float(num_classes)
    return (k - 1) / k * math.log((k - 1) * peak / (1.0 - peak))


@MODELS.register_module()
class ETFHead(ClsHead):
    """Cosine classifier against a fixed simplex-ETF weight.

    ``logits[n, k] = scale * cos(x_n, w_k)``, computed in float32 with
    autocast disabled. Loss, prediction, top-k accuracy and soft labels
    (``gt_score``) are inherited unchanged from mmpretrain's ``ClsHead``.

    Args:
        num_classes (int): Number of classes ``K`` (>= 2).
        in_channels (int): Feature dimension. Must be at least ``K - 1``:
            a ``K``-class simplex ETF does not fit in fewer dimensions. Put a
            ``Projector`` neck in front of the head to reach that size.
        scale (float, optional): Logit scale ``s``. Defaults to
            :func:`peak_etf_scale` when ``peak`` is given, else
            :func:`default_etf_scale` (``sqrt(2) * ln(K - 1)``, floored at
            ``sqrt(2) * ln 2`` for ``K = 2``).
        peak (float, optional): Choose the scale so that a perfectly
            collapsed feature reaches this probability on its class
            (:func:`peak_etf_scale`), the same at every ``K``. Ignored when
            ``scale`` is given.
        learnable_scale (bool): If True the scale is trained; it is stored
            as ``log_scale`` (an ``nn.Parameter``) so that it stays
            positive. If False ``log_scale`` is a buffer. In both cases the
            checkpoint key is ``log_scale``. You may want
            ``paramwise_cfg=dict(custom_keys={'log_scale':
            dict(decay_mult=0.)})`` to keep weight decay off it.
            Defaults to False: on Omniglot-242 (3 seeds) the fixed AdaCos
            scale gave 88.76 +- 0.43 top-1 and a learnable one 86.42 +- 0.70
            (it grew to ~54 and the student overfitted).
        seed (int): Seed of the random orientation of the initial ETF.
            Defaults to 0.
        loss (dict): Config of the classification loss. Defaults to
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        init_cfg (dict, optional): Initialisation config (the head has no
            layer to initialise; kept for API symmetry). Defaults to None.
        **kwargs: Other ``ClsHead`` arguments (``topk``, ``cal_acc``).

    The weight starts as ``simplex_etf(num_classes, in_channels, seed)``,
    which is what plain (non-distillation) training uses. A distiller may
    replace it with teacher prototypes via :meth:`set_weight`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 scale: Optional[float] = None,
                 learnable_scale: bool = False,
                 peak: Optional[float] = None,
                 seed: int = 0,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        if num_classes < 2:
            raise ValueError(f'ETFHead needs num_classes >= 2, got '
                             f'num_classes={num_classes}.')
        if in_channels < num_classes - 1:
            raise ValueError(
                f'ETFHead got in_channels={in_channels} < num_classes - 1 = '
                f'{num_classes - 1} (num_classes={num_classes}): a fixed '
                f'simplex ETF of K classes needs at least K-1 feature dims. '
                f'Project the features first with a neck, e.g. '
                f"neck=dict(type='Projector', in_channels={in_channels}, "
                f'out_channels={num_classes - 1}, hidden_channels='
                f"{max(2 * in_channels, num_classes - 1)}, mode='mlp') "
                f'(any out_channels >= {num_classes - 1} works), and set the '
                f'head in_channels to the projector out_channels.')
        super().__init__(loss=loss, init_cfg=init_cfg, **kwargs)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.learnable_scale = learnable_scale

        if scale is None:
            scale = (
                default_etf_scale(num_classes)
                if peak is None else peak_etf_scale(num_classes, peak))
        if scale <= 0:
            raise ValueError(f'ETFHead scale must be positive, got {scale}.')
        log_scale = torch.tensor(math.log(float(scale)), dtype=torch.float32)
        if learnable_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer('log_scale', log_scale, persistent=True)

        self.register_buffer(
            'weight',
            simplex_etf(num_classes, in_channels, seed=seed),
            persistent=True)

    @property
    def scale(self) -> torch.Tensor:
        """The current logit scale (a positive float32 scalar tensor)."""
        return self.log_scale.float().exp()

    @torch.no_grad()
    def set_weight(self, weight: torch.Tensor) -> None:
        """Replace the fixed weight by ``weight`` (``K x in_channels``).

        ``weight`` may be a tensor or anything ``torch.as_tensor`` accepts.

        Rows are L2-normalised; the buffer keeps its device and dtype. A row
        of zeros stays zero (its logits are 0).
        """
        weight = torch.as_tensor(weight)
        expected = (self.num_classes, self.in_channels)
        if weight.dim() != 2 or tuple(weight.shape) != expected:
            raise ValueError(
                f'ETFHead.set_weight expects a weight of shape (num_classes, '
                f'in_channels) = {expected}, got {tuple(weight.shape)}.')
        weight = F.normalize(weight.detach().float(), dim=1, eps=_EPS)
        self.weight.copy_(weight.to(self.weight.device, self.weight.dtype))

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Return the feature of the last stage (like ``LinearClsHead``)."""
        return feats[-1]

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Cosine logits ``scale * cos(x, w_k)`` in float32 (``N x K``)."""
        x = self.pre_logits(feats)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = F.normalize(x.float(), dim=1, eps=_EPS)
            w = F.normalize(self.weight.float(), dim=1, eps=_EPS)
            return self.scale * (x @ w.t())

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, '
                f'in_channels={self.in_channels}, '
                f'learnable_scale={self.learnable_scale}')

"""NCKDDistiller: :class:`SingleTeacherDistiller` with teacher prototypes.

The teacher's centred, normalised class prototypes (docs/en/method.md §2)

    p_k = (mu_k - mu_G) / ||mu_k - mu_G||,   mu_G = mean_k mu_k,

with ``mu_k`` the teacher's mean pre-logit feature of class k over the
training set, are computed once by ``TeacherPrototypeHook`` and kept in
buffers (saved in checkpoints, restored on resume). They reach the losses as
the extra input ``prototypes``; an ``ETFHead`` student classifier gets its
fixed weights from ``P`` (``head_weights='teacher'``), from the simplex ETF
nearest to ``P`` (``'nearest_etf'``) or keeps its canonical seeded ETF
(``'canonical'``); with ``kd_target='prototype_cosine'`` the losses'
``teacher_logits`` are the teacher's own cosine logits in the student head's
space, ``s * cos(t - mu_G, p_k)`` (§8).
"""
import math
import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...utils.state_check import non_finite_entries
from ..heads import default_etf_scale
from ..utils import nearest_simplex_etf
from .single_teacher_distiller import SingleTeacherDistiller

HEAD_WEIGHTS = ('teacher', 'nearest_etf', 'canonical')
KD_TARGETS = ('logits', 'prototype_cosine')
HEAD_INITS = (None, 'prototypes')


@MODELS.register_module()
class NCKDDistiller(SingleTeacherDistiller):
    """Neural-Collapse-inspired knowledge distillation.

    Args:
        head_weights (str): Where an ``ETFHead`` student gets its weights:
            'teacher' (``P``), 'nearest_etf' or 'canonical'.
        kd_target (str): What the losses get as ``teacher_logits``:
            'logits' (the teacher head's) or 'prototype_cosine'.
        head_init (str, optional): ``'prototypes'``: a linear student head
            on features of the teacher's width starts from the prototypes,
            ``W = a P``, ``b = 0``, and is then trained like any head. Done
            once, when the prototypes are first set; a resumed run or a
            recomputation keeps the trained head. Defaults to None.
        head_init_scale (float, optional): ``a``. Defaults to
            ``sqrt(2) log(K - 1) / sqrt(d)``: a BatchNorm-ended projector
            gives features of norm about ``sqrt(d)``, so the first logits
            are ``sqrt(2) log(K - 1) cos(z, p_k)``, those of an ``ETFHead``
            at its default (AdaCos) scale.
        **kwargs: The arguments of :class:`SingleTeacherDistiller`.
    """

    loss_inputs = SingleTeacherDistiller.loss_inputs + ('prototypes', )

    def __init__(self,
                 *args,
                 head_weights: str = 'teacher',
                 kd_target: str = 'logits',
                 head_init: Optional[str] = None,
                 head_init_scale: Optional[float] = None,
                 **kwargs):
        if head_weights not in HEAD_WEIGHTS:
            raise ValueError(f'model.head_weights must be one of '
                             f'{HEAD_WEIGHTS}, got {head_weights!r}.')
        if kd_target not in KD_TARGETS:
            raise ValueError(f'model.kd_target must be one of {KD_TARGETS}, '
                             f'got {kd_target!r}.')
        if head_init not in HEAD_INITS:
            raise ValueError(f'model.head_init must be one of {HEAD_INITS}, '
                             f'got {head_init!r}.')
        if head_init_scale is not None and head_init_scale <= 0:
            raise ValueError(f'model.head_init_scale must be > 0, got '
                             f'{head_init_scale}.')
        super().__init__(*args, **kwargs)
        self.head_weights = head_weights
        self.kd_target = kd_target
        self.head_init = head_init
        self.head_init_scale = head_init_scale
        self._check_head_init()
        if head_init is not None:
            # whether the linear head was initialised from P (saved in
            # checkpoints, so a resumed or recomputed run keeps its trained
            # head); only with head_init, so the checkpoints of the other
            # configs keep their keys
            self.register_buffer('head_initialised', torch.tensor(False))
        self._check_etf_head()
        K, d = self.num_classes, self.teacher_feat_dim
        self.register_buffer('teacher_class_means', torch.zeros(K, d))
        self.register_buffer('teacher_global_mean', torch.zeros(d))
        self.register_buffer('prototypes', torch.zeros(K, d))
        self.register_buffer('prototypes_ready', torch.tensor(False))
        # provenance: SHA-256 of the teacher weights and of the ordered class
        # names the prototypes were computed for (zeros: not recorded)
        self.register_buffer('prototype_teacher_sha256',
                             torch.zeros(32, dtype=torch.uint8))
        self.register_buffer('prototype_classes_sha256',
                             torch.zeros(32, dtype=torch.uint8))

    def _check_head_init(self) -> None:
        """``head_init='prototypes'`` needs a linear head (``fc``) on
        features of the teacher's width."""
        if self.head_init is None:
            return
        fc = getattr(self.student.head, 'fc', None)
        if not isinstance(fc, torch.nn.Linear):
            raise ValueError(
                f"model.head_init='prototypes' initialises a linear head "
                f'(LinearClsHead), got {type(self.student.head).__name__}: '
                f'use head_init=None with an ETFHead (its weights come from '
                f'head_weights).')
        if fc.in_features != self.teacher_feat_dim:
            raise ValueError(
                f'model.student.head.in_channels={fc.in_features} must equal '
                f'the teacher feature dim {self.teacher_feat_dim} for '
                f"head_init='prototypes': give the student neck=dict("
                f'type="Projector", out_channels={self.teacher_feat_dim}, '
                f'...).')

    def _check_etf_head(self) -> None:
        """An ETF head fed by ``P`` has the teacher's width, and the student
        can reach the rank ``K - 1`` a simplex ETF needs (else a warning)."""
        if not self._etf_head:
            return
        head = self.student.head
        if (self.head_weights != 'canonical'
                and head.in_channels != self.teacher_feat_dim):
            raise ValueError(
                f'model.student.head.in_channels={head.in_channels} must '
                f'equal the teacher feature dim {self.teacher_feat_dim} '
                f'for head_weights={self.head_weights!r}: give the student '
                f'neck=dict(type="Projector", out_channels='
                f'{self.teacher_feat_dim}, ...) or use '
                f'head_weights="canonical".')
        neck = getattr(self.student, 'neck', None)
        rank = neck.max_rank() if hasattr(neck, 'max_rank') else None
        if rank is not None and rank < self.num_classes - 1:
            warnings.warn(
                f'The student representation can reach rank {rank} at '
                f'most, below num_classes - 1 = {self.num_classes - 1} '
                f'that a fixed simplex-ETF head needs to separate all '
                f'classes: use a Projector with mode="mlp" and '
                f'hidden_channels >= {self.num_classes}.')

    @property
    def _etf_head(self) -> bool:
        return hasattr(self.student.head, 'set_weight')

    @property
    def needs_prototypes(self) -> bool:
        """Whether training needs the teacher prototypes."""
        return ('prototypes' in self.needed_inputs
                or self.head_init == 'prototypes'
                or (self._etf_head and self.head_weights != 'canonical')
                or self.kd_target == 'prototype_cosine')

    @staticmethod
    def _hex(buffer: torch.Tensor) -> Optional[str]:
        return None if not bool(buffer.any()) else bytes(
            buffer.cpu().tolist()).hex()

    @property
    def prototype_provenance(self) -> Tuple[Optional[str], Optional[str]]:
        """``(teacher weights SHA-256, class names SHA-256)`` the current
        prototypes were computed for; None where not recorded."""
        return (self._hex(self.prototype_teacher_sha256),
                self._hex(self.prototype_classes_sha256))

    def non_finite_state(self) -> List[str]:
        """The prototype buffers and student tensors holding NaN/Inf."""
        return non_finite_entries((k, v) for k, v in self.state_dict().items()
                                  if not k.startswith('teacher.'))

    @torch.no_grad()
    def set_prototypes(self,
                       class_means: torch.Tensor,
                       teacher_sha256: Optional[str] = None,
                       classes_sha256: Optional[str] = None) -> None:
        """Store the teacher class means ``mu_k``, derive ``P`` and apply
        the head weights; record which teacher and class list they are for
        (hex SHA-256 digests, see :meth:`prototype_provenance`)."""
        K, d = self.num_classes, self.teacher_feat_dim
        if tuple(class_means.shape) != (K, d):
            raise ValueError(
                f'Teacher prototypes must be ({K}, {d}) = (num_classes, '
                f'teacher feature dim), got {tuple(class_means.shape)}: '
                f'they were computed for another dataset or teacher.')
        bad = non_finite_entries([('teacher class means', class_means)])
        if bad:
            raise ValueError(f'Teacher prototypes contain NaN/Inf ({bad[0]}):'
                             f' check the teacher checkpoint.')
        mu = class_means.to(self.teacher_class_means)
        mu_g = mu.mean(0)
        self.teacher_class_means.copy_(mu)
        self.teacher_global_mean.copy_(mu_g)
        self.prototypes.copy_(F.normalize(mu - mu_g, dim=1, eps=1e-12))
        self.prototypes_ready.fill_(True)
        for buffer, digest in ((self.prototype_teacher_sha256, teacher_sha256),
                               (self.prototype_classes_sha256,
                                classes_sha256)):
            buffer.copy_(
                torch.tensor(
                    list(bytes.fromhex(digest)) if digest else [0] * 32,
                    dtype=torch.uint8))
        if self.head_init == 'prototypes' and not bool(self.head_initialised):
            fc = self.student.head.fc
            scale = self.head_init_scale
            if scale is None:
                scale = default_etf_scale(K) / math.sqrt(d)
            fc.weight.copy_(scale * self.prototypes)
            if fc.bias is not None:
                fc.bias.zero_()
            self.head_initialised.fill_(True)
        if self._etf_head and self.head_weights != 'canonical':
            weight = self.prototypes
            if self.head_weights == 'nearest_etf':
                weight = nearest_simplex_etf(weight)
            self.student.head.set_weight(weight)

    def teacher_logits(self, neck_feats, pre_logits: torch.Tensor):
        """The teacher head's logits, or with
        ``kd_target='prototype_cosine'`` ``s * cos(t - mu_G, p_k)`` with the
        student head's scale ``s``."""
        if self.kd_target == 'logits':
            return super().teacher_logits(neck_feats, pre_logits)
        scale = getattr(self.student.head, 'scale', None)
        if scale is None:
            scale = default_etf_scale(self.num_classes)
        scale = torch.as_tensor(scale, dtype=torch.float32).detach()
        centred = F.normalize(
            pre_logits.float() - self.teacher_global_mean, dim=1, eps=1e-12)
        return scale * centred @ self.prototypes.T

    def extra_loss_inputs(self) -> dict:
        """``prototypes``: the teacher's ``P``."""
        return dict(prototypes=self.prototypes)

    def loss(self, inputs: torch.Tensor, data_samples: List) -> dict:
        """As :meth:`SingleTeacherDistiller.loss`, once the prototypes the
        configuration needs exist."""
        if self.needs_prototypes and not bool(self.prototypes_ready):
            raise RuntimeError(
                'The teacher prototypes were never computed: add '
                'custom_hooks=[dict(type="TeacherPrototypeHook")] to the '
                'config (or load them with its load_from=...).')
        return super().loss(inputs, data_samples)

"""NCKDDistiller: a frozen teacher, a student, and distillation losses.

One training step (``mode='loss'``)::

    t = f_t(x), t_logits = h_t(t)                    # teacher, eval, no_grad
    f = f_s(x), s_logits = h_s(f)                    # student
    z = g(f)                                          # projector (or f)
    L = CE(s_logits, y) + sum_j L_j(z, y, P, s_logits, t_logits, ...)

``P`` are the teacher's centred, normalised class prototypes
``p_k = (mu_k - mu_G) / ||mu_k - mu_G||`` (``mu_k`` the teacher's mean
pre-logit feature of class k over the training set, ``mu_G = mean_k mu_k``),
computed once by ``TeacherPrototypeHook`` and kept in buffers (in checkpoints,
restored on resume). An ``ETFHead`` student classifier gets its fixed weights
from ``P`` (``head_weights='teacher'``), from the simplex ETF nearest to ``P``
(``'nearest_etf'``) or keeps its canonical seeded ETF (``'canonical'``).

Each distillation loss is called with the arguments its ``forward`` names,
taken from: ``z`` (projected student features), ``labels`` (hard ``(N,)`` or
Mixup/CutMix soft ``(N, K)``), ``prototypes`` (``P``), ``student_logits``,
``teacher_logits`` (the teacher's logits, or with
``kd_target='prototype_cosine'`` the teacher's own cosine logits
``s * cos(t - mu_G, p_k)`` in the student head's cosine space),
``teacher_feats`` and ``epoch``. So a custom loss plugs in by naming them.

``predict`` and ``tensor`` modes run the student only; predictions carry the
student's ``pre_logits`` (and the classifier weight as ``cls_weight``) for
``NCMetric``.
"""
import inspect
import math
import os.path as osp
import warnings
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import MODELS

from ..utils import attach_features, nearest_simplex_etf

HEAD_WEIGHTS = ('teacher', 'nearest_etf', 'canonical')
KD_TARGETS = ('logits', 'prototype_cosine')
# arguments a distillation loss may name in its forward()
LOSS_INPUTS = ('z', 'labels', 'prototypes', 'student_logits',
               'teacher_logits', 'teacher_feats', 'epoch')


def resolve_model_cfg(model, role: str) -> dict:
    """A model config given as a dict, or as a config file whose ``model``
    is used: a path (absolute, relative to the working directory, or to the
    mmnckd repo / installed package), or ``'mmpretrain::resnet/xxx.py'``."""
    if not isinstance(model, str):
        return model
    if '::' in model:
        from mmengine.hub import get_config
        return get_config(model).model
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    candidates = [model, osp.join(root, model),
                  osp.join(root, 'mmnckd', '.mim', model)]
    for path in candidates:
        if osp.isfile(path):
            return Config.fromfile(path).model
    raise FileNotFoundError(
        f'model.{role}={model!r}: no such config file (looked in the '
        f'working directory and in {root}).')


def _feat_dim(head, role: str, override: Optional[int]) -> int:
    if override is not None:
        return int(override)
    dim = getattr(head, 'in_channels', None)
    if dim is None:
        raise ValueError(
            f'Cannot tell the {role} pre-logit feature dim: its head '
            f'{type(head).__name__} has no `in_channels`. Set '
            f'model.{role}_feat_dim=<dim> in the config.')
    return int(dim)


@MODELS.register_module()
class NCKDDistiller(BaseModel):
    """Neural-Collapse-inspired knowledge distillation of an mmpretrain
    classifier.

    Args:
        student (dict | str): An mmpretrain classifier config
            (``ImageClassifier`` with any backbone/neck/head), or a config
            file whose ``model`` it is. It is what gets exported.
        teacher (dict | str): The teacher classifier config, or its file.
        teacher_ckpt (str, optional): Teacher checkpoint (path or URL),
            loaded in ``init_weights`` i.e. when training starts, never
            when a model is built for testing.
        projector (dict, optional): A neck mapping the student pre-logits to
            the teacher feature dim for the distillation losses only (not
            exported). None: the student's pre-logits are used as they are
            (e.g. when the student's own neck is a ``Projector``).
        distill_losses (dict): ``name -> loss config``; names must start
            with ``loss_`` (mmengine sums the keys containing ``loss``).
        head_weights (str): Where an ``ETFHead`` student gets its weights:
            'teacher' (P), 'nearest_etf' or 'canonical'.
        kd_target (str): 'logits' or 'prototype_cosine' (see module doc).
        save_teacher (bool): Keep teacher weights in checkpoints. Default
            False: checkpoints hold the student, projector and prototypes.
        predict_features (bool): Attach ``pre_logits``/``cls_weight`` to
            predictions (for ``NCMetric``).
        num_classes, teacher_feat_dim, student_feat_dim (int, optional):
            Only needed when the heads do not say (no ``num_classes`` or
            ``in_channels`` attribute).
        data_preprocessor (dict, optional): Defaults to the student's.
            Teacher and student see the same preprocessed inputs.
    """

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 teacher_ckpt: Optional[str] = None,
                 projector: Optional[dict] = None,
                 distill_losses: Optional[Dict[str, dict]] = None,
                 head_weights: str = 'teacher',
                 kd_target: str = 'logits',
                 save_teacher: bool = False,
                 predict_features: bool = True,
                 num_classes: Optional[int] = None,
                 teacher_feat_dim: Optional[int] = None,
                 student_feat_dim: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if head_weights not in HEAD_WEIGHTS:
            raise ValueError(f'model.head_weights must be one of '
                             f'{HEAD_WEIGHTS}, got {head_weights!r}.')
        if kd_target not in KD_TARGETS:
            raise ValueError(f'model.kd_target must be one of {KD_TARGETS}, '
                             f'got {kd_target!r}.')
        student = MODELS.build(resolve_model_cfg(student, 'student'))
        if data_preprocessor is None:
            data_preprocessor = student.data_preprocessor
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'ClsDataPreprocessor')
            augments = (getattr(student, 'train_cfg', None) or {}).get('augments')
            if augments is not None:
                data_preprocessor.setdefault('batch_augments', dict(augments=augments))
            # mmpretrain's registry, as ImageClassifier does: works without
            # default_scope='mmpretrain'
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = student
        # the exported student must preprocess exactly as in training
        self.student.data_preprocessor = self.data_preprocessor
        self.teacher = MODELS.build(resolve_model_cfg(teacher, 'teacher'))
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.teacher_ckpt = teacher_ckpt
        self.head_weights = head_weights
        self.kd_target = kd_target
        self.save_teacher = save_teacher
        self.predict_features = predict_features

        self.num_classes = self._num_classes(num_classes)
        self.teacher_feat_dim = _feat_dim(self.teacher.head, 'teacher',
                                          teacher_feat_dim)
        self.student_feat_dim = _feat_dim(self.student.head, 'student',
                                          student_feat_dim)
        self.projector = MODELS.build(projector) if projector else None
        self.distill_losses = self._build_losses(distill_losses or {})
        self._check_dims()

        K, d = self.num_classes, self.teacher_feat_dim
        self.register_buffer('teacher_class_means', torch.zeros(K, d))
        self.register_buffer('teacher_global_mean', torch.zeros(d))
        self.register_buffer('prototypes', torch.zeros(K, d))
        self.register_buffer('prototypes_ready', torch.tensor(False))
        self._register_state_dict_hook(self._drop_teacher_state)
        self.register_load_state_dict_post_hook(self._ignore_missing_teacher)

    # ------------------------------------------------------------------ build
    def _num_classes(self, override):
        t_k = getattr(self.teacher.head, 'num_classes', None)
        s_k = getattr(self.student.head, 'num_classes', None)
        if t_k is not None and s_k is not None and t_k != s_k:
            raise ValueError(
                f'Teacher and student disagree on the number of classes: '
                f'model.teacher.head.num_classes={t_k} but '
                f'model.student.head.num_classes={s_k}. Both must classify '
                f'the same {max(t_k, s_k)}-or-fewer classes of the dataset.')
        k = override if override is not None else (s_k or t_k)
        if k is None:
            raise ValueError('Cannot tell the number of classes from the '
                             'heads: set model.num_classes.')
        return int(k)

    def _build_losses(self, cfgs: Dict[str, dict]) -> torch.nn.ModuleDict:
        losses = torch.nn.ModuleDict()
        self._loss_args = {}
        for name, cfg in cfgs.items():
            if not name.startswith('loss_'):
                raise ValueError(
                    f'model.distill_losses key {name!r} must start with '
                    f'"loss_" (mmengine only sums outputs whose key '
                    f'contains "loss"); rename it, e.g. "loss_{name}".')
            cfg = dict(cfg)
            loss_cls = MODELS.get(cfg['type'])
            params = inspect.signature(loss_cls.__init__).parameters
            if 'num_classes' in params:
                cfg.setdefault('num_classes', self.num_classes)
            if 'feat_dim' in params:
                cfg.setdefault('feat_dim', self.teacher_feat_dim)
            losses[name] = MODELS.build(cfg)
            names = [
                p for p in inspect.signature(
                    losses[name].forward).parameters if p != 'self'
            ]
            unknown = [
                p for p in names if p not in LOSS_INPUTS and
                inspect.signature(losses[name].forward).parameters[p].default
                is inspect.Parameter.empty
            ]
            if unknown:
                raise ValueError(
                    f'model.distill_losses.{name} ({cfg["type"]}) asks for '
                    f'{unknown}, which the distiller does not provide; a '
                    f'loss may take any of {LOSS_INPUTS}.')
            self._loss_args[name] = [p for p in names if p in LOSS_INPUTS]
        return losses

    def _check_dims(self):
        needs_z = any('z' in a for a in self._loss_args.values())
        proj_out = getattr(self.projector, 'out_channels', None)
        z_dim = proj_out if self.projector is not None else self.student_feat_dim
        if needs_z and z_dim != self.teacher_feat_dim:
            where = ('model.projector.out_channels' if self.projector is not None
                     else 'the student pre-logit dim (no model.projector)')
            raise ValueError(
                f'{where} is {z_dim} but the teacher feature dim is '
                f'{self.teacher_feat_dim}: the NC losses compare student and '
                f'teacher features. Set model.projector=dict(type='
                f'"Projector", in_channels={self.student_feat_dim}, '
                f'out_channels={self.teacher_feat_dim}, mode="mlp").')
        head = self.student.head
        if self._etf_head and self.head_weights != 'canonical':
            if head.in_channels != self.teacher_feat_dim:
                raise ValueError(
                    f'model.student.head.in_channels={head.in_channels} must '
                    f'equal the teacher feature dim {self.teacher_feat_dim} '
                    f'for head_weights={self.head_weights!r}: give the student '
                    f'neck=dict(type="Projector", out_channels='
                    f'{self.teacher_feat_dim}, ...) or use '
                    f'head_weights="canonical".')
        if self._etf_head:
            rank = self._student_rank_bound()
            if rank is not None and rank < self.num_classes - 1:
                warnings.warn(
                    f'The student representation can reach rank {rank} at '
                    f'most, below num_classes - 1 = {self.num_classes - 1} '
                    f'that a fixed simplex-ETF head needs to separate all '
                    f'classes: use a Projector with mode="mlp" and '
                    f'hidden_channels >= {self.num_classes}.')

    def _student_rank_bound(self):
        neck = getattr(self.student, 'neck', None)
        if neck is not None and hasattr(neck, 'max_rank'):
            return neck.max_rank()
        return None

    @property
    def _etf_head(self) -> bool:
        return hasattr(self.student.head, 'set_weight')

    @property
    def needs_prototypes(self) -> bool:
        """Whether training needs the teacher prototypes."""
        return (any('prototypes' in a for a in self._loss_args.values())
                or (self._etf_head and self.head_weights != 'canonical')
                or self.kd_target == 'prototype_cosine')

    # ---------------------------------------------------------- checkpoints
    def init_weights(self):
        """Initialise the student, then load the teacher checkpoint.

        The Runner calls this when training starts (not for testing), before
        ``--resume``/``load_from`` restore the student and prototypes.
        """
        super().init_weights()
        if self.teacher_ckpt is None:
            warnings.warn('model.teacher_ckpt is None: distilling from a '
                          'randomly initialised teacher.')
            return
        self.load_teacher(self.teacher_ckpt)

    def load_teacher(self, filename: str) -> None:
        """Load teacher weights strictly; a mismatch lists the keys."""
        try:
            ckpt = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'model.teacher_ckpt={filename!r} does not exist: train the '
                f'teacher first (tools/train.py <teacher config>) or fix the '
                f'path.') from e
        except Exception as e:
            raise RuntimeError(
                f'model.teacher_ckpt={filename!r} could not be read as a '
                f'checkpoint ({type(e).__name__}: {e}). Point it to a file '
                f'written by torch.save / mmengine (e.g. the teacher\'s '
                f'work_dir/epoch_N.pth); checkpoints are loaded with '
                f'weights_only=True, so one that pickles other Python '
                f'objects is refused: re-save only its weights, '
                f'torch.save(dict(state_dict=model.state_dict()), path), from '
                f'a source you trust.') from e
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise RuntimeError(f'model.teacher_ckpt={filename!r} holds no '
                               f'state_dict.')
        state = {k[7:] if k.startswith('module.') else k: v
                 for k, v in state.items()}
        if any(k.startswith('teacher.') for k in state):  # a distiller's
            state = {k[8:]: v for k, v in state.items()
                     if k.startswith('teacher.')}
        # the teacher's own preprocessor is not used (inputs are shared)
        own_state = self.teacher.state_dict()
        own = {k for k in own_state if not k.startswith('data_preprocessor.')}
        given = {k for k in state if not k.startswith('data_preprocessor.')}
        missing, unexpected = sorted(own - given), sorted(given - own)
        mismatched = sorted(
            f'{k}: {tuple(state[k].shape)} vs {tuple(own_state[k].shape)}'
            for k in own & given
            if getattr(state[k], 'shape', None) != own_state[k].shape)
        if missing or unexpected or mismatched:

            def show(keys):
                more = ' ...' if len(keys) > 5 else ''
                return f'{keys[:5]}{more} ({len(keys)})'

            raise RuntimeError(
                f'model.teacher_ckpt={filename!r} does not match '
                f'model.teacher: missing keys {show(missing)}, unexpected '
                f'keys {show(unexpected)}, shape mismatches (checkpoint vs '
                f'model) {show(mismatched)}. Use the config the teacher was '
                f'trained with.')
        state = {k: v for k, v in state.items() if k in own}
        self.teacher.load_state_dict(state, strict=False)
        self.teacher.eval()
        MMLogger.get_current_instance().info(
            f'Loaded teacher weights from {filename}')

    @staticmethod
    def _drop_teacher_state(module, state_dict, prefix, local_metadata):
        if module.save_teacher:
            return
        for key in [k for k in state_dict if k.startswith(prefix + 'teacher.')]:
            del state_dict[key]

    @staticmethod
    def _ignore_missing_teacher(module, incompatible_keys):
        # Teacher weights come from teacher_ckpt, not from our checkpoints.
        missing = incompatible_keys.missing_keys
        missing[:] = [
            k for k in missing
            if not (k.startswith('teacher.') or '.teacher.' in k)
        ]

    def train(self, mode: bool = True):
        """The teacher stays in eval mode (BN, Dropout, DropPath)."""
        super().train(mode)
        self.teacher.eval()
        return self

    # ------------------------------------------------------------ prototypes
    @torch.no_grad()
    def teacher_features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's pre-logit features ``t = f_t(x)`` (no grad, eval)."""
        return self.teacher.head.pre_logits(self.teacher.extract_feat(inputs))

    @torch.no_grad()
    def set_prototypes(self, class_means: torch.Tensor) -> None:
        """Store the teacher class means ``mu_k`` and derive ``P``."""
        K, d = self.num_classes, self.teacher_feat_dim
        if tuple(class_means.shape) != (K, d):
            raise ValueError(
                f'Teacher prototypes must be ({K}, {d}) = (num_classes, '
                f'teacher feature dim), got {tuple(class_means.shape)}: '
                f'they were computed for another dataset or teacher.')
        if not torch.isfinite(class_means).all():
            raise ValueError('Teacher prototypes contain NaN/Inf: check the '
                             'teacher checkpoint.')
        mu = class_means.to(self.teacher_class_means)
        mu_g = mu.mean(0)
        self.teacher_class_means.copy_(mu)
        self.teacher_global_mean.copy_(mu_g)
        self.prototypes.copy_(F.normalize(mu - mu_g, dim=1, eps=1e-12))
        self.prototypes_ready.fill_(True)
        self._apply_head_weights()

    def _apply_head_weights(self) -> None:
        if not self._etf_head or self.head_weights == 'canonical':
            return
        weight = self.prototypes
        if self.head_weights == 'nearest_etf':
            weight = nearest_simplex_etf(weight)
        self.student.head.set_weight(weight)

    # -------------------------------------------------------------- forward
    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.student(inputs, mode='tensor')
        raise RuntimeError(f'Invalid mode "{mode}": use loss, predict or '
                           f'tensor.')

    def extract_feat(self, inputs, stage: str = 'neck'):
        """The student's features (mmpretrain's ``extract_feat``)."""
        return self.student.extract_feat(inputs, stage=stage)

    @staticmethod
    def _labels(data_samples) -> torch.Tensor:
        if 'gt_score' in data_samples[0]:
            return torch.stack([s.gt_score for s in data_samples])
        return torch.cat([s.gt_label for s in data_samples])

    def _teacher_cosine_logits(self, t_feats: torch.Tensor) -> torch.Tensor:
        scale = getattr(self.student.head, 'scale', None)
        if scale is None:
            scale = math.sqrt(2) * math.log(max(self.num_classes - 1, 2))
        scale = torch.as_tensor(scale, dtype=torch.float32).detach()
        centred = F.normalize(t_feats.float() - self.teacher_global_mean,
                              dim=1, eps=1e-12)
        return scale * centred @ self.prototypes.T

    def loss(self, inputs: torch.Tensor, data_samples: List) -> dict:
        if self.needs_prototypes and not bool(self.prototypes_ready):
            raise RuntimeError(
                'The teacher prototypes were never computed: add '
                'custom_hooks=[dict(type="TeacherPrototypeHook")] to the '
                'config (or load them with its load_from=...).')
        needed = set().union(*self._loss_args.values()) if self._loss_args else set()
        with torch.no_grad():
            t_feats = t_logits = None
            if needed & {'teacher_logits', 'teacher_feats'}:
                t_neck = self.teacher.extract_feat(inputs)
                t_feats = self.teacher.head.pre_logits(t_neck)
                if 'teacher_logits' in needed:
                    t_logits = (self.teacher.head(t_neck)
                                if self.kd_target == 'logits' else
                                self._teacher_cosine_logits(t_feats))
        s_neck = self.student.extract_feat(inputs)
        s_logits = self.student.head(s_neck)
        losses = {
            f'student.{k}': v
            for k, v in self.student.head._get_loss(s_logits,
                                                    data_samples).items()
        }
        if not self.distill_losses:
            return losses
        z = None
        if 'z' in needed:
            z = self.student.head.pre_logits(s_neck)
            if self.projector is not None:
                z = self.projector(z)
        available = dict(
            z=z,
            labels=self._labels(data_samples),
            prototypes=self.prototypes,
            student_logits=s_logits,
            teacher_logits=t_logits,
            teacher_feats=t_feats,
            epoch=MessageHub.get_current_instance().get_info('epoch', 0))
        for name, loss_module in self.distill_losses.items():
            kwargs = {a: available[a] for a in self._loss_args[name]}
            losses[f'distill.{name}'] = loss_module(**kwargs)
        return losses

    def predict(self, inputs: torch.Tensor, data_samples=None):
        feats = self.student.extract_feat(inputs)
        preds = self.student.head.predict(feats, data_samples)
        if self.predict_features:
            attach_features(preds, self.student.head.pre_logits(feats),
                            self.student.head)
        return preds

"""SingleTeacherDistiller: a frozen teacher, a student, distillation losses.

One training step (``mode='loss'``)::

    t = f_t(x), t_logits = h_t(t)                    # teacher: eval, no_grad
    f = f_s(x), s_logits = h_s(f)                    # student
    z = g(f)                                          # projector (or f)
    L = L_student(s_logits, y) + sum_j L_j(<the inputs L_j names>)

``L_student`` is the student head's own loss (``student.loss``, e.g. CE).
Each distillation loss is called with the arguments its ``forward`` names,
out of :attr:`SingleTeacherDistiller.loss_inputs`: ``z`` (projected student
features), ``labels`` (hard ``(N,)`` or Mixup/CutMix soft ``(N, K)``),
``student_logits``, ``teacher_logits``, ``teacher_feats`` (the teacher's
pre-logit features), ``epoch`` (0-based; under an iteration-based loop
the completed passes over the training set, see ``EpochInfoHook``),
``student_feats`` (the student's pre-logit features ``f``, before the
projector) and ``sample_idx`` (``(N,)`` int64, each sample's index in the
training set, from its data sample's ``sample_idx``). A custom loss plugs in
by naming them; the teacher runs only when a loss names one of
:attr:`SingleTeacherDistiller.teacher_inputs`.

``predict`` and ``tensor`` run the student alone, so mmpretrain's metrics,
``tools/test.py`` and the exported student need nothing else.
"""
import inspect
import os.path as osp
import warnings
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import MODELS

from ...utils.state_check import (state_differences, strip_prefix,
                                  weights_sha256)
from ..utils import attach_features


def resolve_model_cfg(model, role: str) -> dict:
    """A model config given as a dict, or as a config file whose ``model``
    is used: a path (absolute, relative to the working directory, or to the
    mmnckd repo / installed package), or ``'mmpretrain::resnet/xxx.py'``."""
    if not isinstance(model, str):
        return model
    if '::' in model:
        from mmengine.hub import get_config
        return get_config(model).model
    root = osp.dirname(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    candidates = [
        model,
        osp.join(root, model),
        osp.join(root, 'mmnckd', '.mim', model)
    ]
    for path in candidates:
        if osp.isfile(path):
            return Config.fromfile(path).model
    raise FileNotFoundError(
        f'model.{role}={model!r}: no such config file (looked in the '
        f'working directory and in {root}).')


def feat_dim(head, role: str, override: Optional[int]) -> int:
    """The pre-logit feature dim of ``head`` (its ``in_channels``)."""
    if override is not None:
        return int(override)
    dim = getattr(head, 'in_channels', None)
    if dim is None:
        raise ValueError(
            f'Cannot tell the {role} pre-logit feature dim: its head '
            f'{type(head).__name__} has no `in_channels`. Set '
            f'model.{role}_feat_dim=<dim> in the config.')
    return int(dim)


def _show(keys: List[str]) -> str:
    return f'{keys[:5]}{" ..." if len(keys) > 5 else ""} ({len(keys)})'


class _HeadRecorder:
    """Records the input features and the output logits of a head during
    one forward (mmrazor's recorder idea), through public module hooks."""

    def __init__(self, head: torch.nn.Module):
        self.head = head
        self.feats = self.logits = None

    def __enter__(self):
        self._handles = [
            self.head.register_forward_pre_hook(self._pre),
            self.head.register_forward_hook(self._post)
        ]
        return self

    def _pre(self, module, args):
        self.feats = args[0]

    def _post(self, module, args, output):
        self.logits = output

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()


@MODELS.register_module()
class SingleTeacherDistiller(BaseModel):
    """Distil a frozen teacher into any mmpretrain classifier.

    Args:
        student (dict | str): An mmpretrain classifier config
            (``ImageClassifier`` with any backbone/neck/head), or a config
            file whose ``model`` it is. It is what gets exported.
        teacher (dict | str): The teacher classifier config, or its file.
        teacher_ckpt (str, optional): Teacher checkpoint (path or http(s)
            URL), loaded strictly in ``init_weights``, i.e. when training
            starts, never when a model is built for testing.
        projector (dict, optional): A neck mapping the student pre-logits to
            the teacher feature dim for the distillation losses only (not
            exported). None: losses get the student's pre-logits as ``z``.
        distill_losses (dict): ``name -> loss config``; names must start
            with ``loss_`` (mmengine sums the keys containing ``loss``).
        save_teacher (bool): Keep teacher weights in checkpoints. Default
            False: checkpoints hold everything but the teacher.
        predict_features (bool): Attach ``pre_logits``/``cls_weight`` to
            predictions (for ``NCMetric``).
        num_classes, teacher_feat_dim, student_feat_dim (int, optional):
            Only needed when the heads do not say (no ``num_classes`` or
            ``in_channels`` attribute).
        data_preprocessor (dict, optional): Defaults to the student's.
            Teacher and student see the same preprocessed inputs.
        init_cfg (dict, optional): mmengine's initialisation config.
    """

    #: The arguments a distillation loss's ``forward`` may name.
    loss_inputs = ('z', 'labels', 'student_logits', 'teacher_logits',
                   'teacher_feats', 'epoch', 'student_feats', 'sample_idx')
    #: The loss inputs that need a teacher forward pass.
    teacher_inputs = ('teacher_logits', 'teacher_feats')

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 teacher_ckpt: Optional[str] = None,
                 projector: Optional[dict] = None,
                 distill_losses: Optional[Dict[str, dict]] = None,
                 save_teacher: bool = False,
                 predict_features: bool = True,
                 num_classes: Optional[int] = None,
                 teacher_feat_dim: Optional[int] = None,
                 student_feat_dim: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        student = MODELS.build(resolve_model_cfg(student, 'student'))
        if data_preprocessor is None:
            data_preprocessor = student.data_preprocessor
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'ClsDataPreprocessor')
            augments = (getattr(student, 'train_cfg', None)
                        or {}).get('augments')
            if augments is not None:
                data_preprocessor.setdefault('batch_augments',
                                             dict(augments=augments))
            # mmpretrain's registry, as ImageClassifier does: works without
            # default_scope='mmpretrain'
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = student
        # the exported student must preprocess exactly as in training
        self.student.data_preprocessor = self.data_preprocessor
        self.teacher = MODELS.build(resolve_model_cfg(teacher, 'teacher'))
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.teacher_ckpt = teacher_ckpt
        #: the class names the teacher checkpoint's meta records, if any
        self.teacher_classes: Optional[tuple] = None
        self._classes_checked = False
        self.save_teacher = save_teacher
        self.predict_features = predict_features

        self.num_classes = self._num_classes(num_classes)
        self.teacher_feat_dim = feat_dim(self.teacher.head, 'teacher',
                                         teacher_feat_dim)
        self.student_feat_dim = feat_dim(self.student.head, 'student',
                                         student_feat_dim)
        self.projector = MODELS.build(projector) if projector else None
        self.distill_losses = self._build_losses(distill_losses or {})
        self._check_dims()
        self._register_state_dict_hook(self._drop_teacher_state)
        self.register_load_state_dict_post_hook(self._ignore_missing_teacher)

    # ------------------------------------------------------------------ build
    def _num_classes(self, override: Optional[int]) -> int:
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
        """Build the losses; bind each to the inputs its ``forward`` names.

        A loss whose ``__init__`` takes ``num_classes``, ``feat_dim`` (the
        teacher feature dim), ``student_feat_dim`` or ``teacher_feat_dim``
        gets the distiller's unless its config sets it.
        """
        losses = torch.nn.ModuleDict()
        self._loss_args = {}
        for name, cfg in cfgs.items():
            if not name.startswith('loss_'):
                raise ValueError(
                    f'model.distill_losses key {name!r} must start with '
                    f'"loss_" (mmengine only sums outputs whose key '
                    f'contains "loss"); rename it, e.g. "loss_{name}".')
            cfg = dict(cfg)
            params = inspect.signature(MODELS.get(
                cfg['type']).__init__).parameters
            if 'num_classes' in params:
                cfg.setdefault('num_classes', self.num_classes)
            if 'feat_dim' in params:
                cfg.setdefault('feat_dim', self.teacher_feat_dim)
            for key in ('student_feat_dim', 'teacher_feat_dim'):
                if key in params:
                    cfg.setdefault(key, getattr(self, key))
            losses[name] = MODELS.build(cfg)
            params = inspect.signature(losses[name].forward).parameters
            unknown = [
                p for p, v in params.items() if p not in self.loss_inputs
                and v.default is inspect.Parameter.empty
            ]
            if unknown:
                raise ValueError(
                    f'model.distill_losses.{name} ({cfg["type"]}) asks for '
                    f'{unknown}, which {type(self).__name__} does not '
                    f'provide; a loss may take any of {self.loss_inputs}.')
            self._loss_args[name] = [
                p for p in params if p in self.loss_inputs
            ]
        return losses

    def _check_dims(self) -> None:
        """The student's neck feeds its head, the projector takes the
        student's pre-logits, and losses that take ``z`` compare it with
        teacher features: each pair of widths must agree (checked here, at
        build time, rather than in a matmul after the prototype pass)."""
        neck = getattr(self.student, 'neck', None)
        neck_out = getattr(neck, 'out_channels', None)
        head_in = getattr(self.student.head, 'in_channels', None)
        if isinstance(neck_out, int) and isinstance(head_in, int) \
                and neck_out != head_in:
            raise ValueError(
                f'model.student.neck.out_channels={neck_out} but '
                f'model.student.head.in_channels={head_in}: the neck feeds '
                f'the head, so they must be equal. Set both to the same '
                f'width (an ETFHead fed by the teacher prototypes needs the '
                f'teacher feature dim, {self.teacher_feat_dim}).')
        proj_in = getattr(self.projector, 'in_channels', None)
        if isinstance(proj_in, int) and proj_in != self.student_feat_dim:
            raise ValueError(
                f'model.projector.in_channels={proj_in} but the student '
                f'pre-logit dim (model.student.head.in_channels) is '
                f'{self.student_feat_dim}: set model.projector.in_channels='
                f'{self.student_feat_dim}.')
        needs_z = any('z' in a for a in self._loss_args.values())
        proj_out = getattr(self.projector, 'out_channels', None)
        z_dim = (
            proj_out if self.projector is not None else self.student_feat_dim)
        if needs_z and z_dim != self.teacher_feat_dim:
            where = ('model.projector.out_channels' if self.projector
                     is not None else 'the student pre-logit dim (no '
                     'model.projector)')
            raise ValueError(
                f'{where} is {z_dim} but the teacher feature dim is '
                f'{self.teacher_feat_dim}: the losses compare student and '
                f'teacher features. Set model.projector=dict(type='
                f'"Projector", in_channels={self.student_feat_dim}, '
                f'out_channels={self.teacher_feat_dim}, mode="mlp").')

    @property
    def needed_inputs(self) -> set:
        """The loss inputs that at least one distillation loss names."""
        return set().union(*self._loss_args.values()) \
            if self._loss_args else set()

    # ---------------------------------------------------------- checkpoints
    def init_weights(self) -> None:
        """Initialise the student, then load the teacher checkpoint.

        The Runner calls this when training starts (not for testing), before
        ``--resume``/``load_from`` restore the rest of the distiller.
        """
        super().init_weights()
        if self.teacher_ckpt is None:
            warnings.warn('model.teacher_ckpt is None: distilling from a '
                          'randomly initialised teacher.')
            return
        self.load_teacher(self.teacher_ckpt)

    def load_teacher(self, filename: str) -> None:
        """Load the teacher weights strictly; a mismatch lists the keys.

        Accepts a plain classifier checkpoint or a distiller checkpoint
        saved with ``save_teacher=True`` (its ``teacher.`` entries).
        """
        try:
            ckpt = CheckpointLoader.load_checkpoint(
                filename, map_location='cpu')
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
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt,
                                                           dict) else None
        if not isinstance(state, dict):
            raise RuntimeError(f'model.teacher_ckpt={filename!r} holds no '
                               f'state_dict.')
        state = strip_prefix(state, '')  # DDP's module. prefix
        if any(k.startswith('teacher.') for k in state):  # a distiller's
            state = strip_prefix(state, 'teacher.')
        # the teacher's own preprocessor is not used (inputs are shared)
        own = {
            k: v
            for k, v in self.teacher.state_dict().items()
            if not k.startswith('data_preprocessor.')
        }
        missing, unexpected, differ = state_differences(
            own, {
                k: v
                for k, v in state.items()
                if not k.startswith('data_preprocessor.')
            })
        mismatched = sorted(f'{k}: {given} vs {model}'
                            for k, given, model in differ)
        if missing or unexpected or mismatched:
            raise RuntimeError(
                f'model.teacher_ckpt={filename!r} does not match '
                f'model.teacher: missing keys {_show(missing)}, unexpected '
                f'keys {_show(unexpected)}, shape mismatches (checkpoint vs '
                f'model) {_show(mismatched)}. Use the config the teacher was '
                f'trained with.')
        state = {k: v for k, v in state.items() if k in own}
        self.teacher.load_state_dict(state, strict=False)
        meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
        classes = (meta.get('dataset_meta') or {}).get('classes')
        self.teacher_classes = tuple(classes) if classes else None
        self.teacher.eval()
        MMLogger.get_current_instance().info(
            f'Loaded teacher weights from {filename}')

    def teacher_weights_sha256(self) -> str:
        """SHA-256 of the teacher's current weights (names, shapes,
        bytes): identifies the teacher whatever file it came from."""
        return weights_sha256(
            self.teacher.state_dict(), skip=('data_preprocessor.', ))

    def check_teacher_classes(self, classes) -> None:
        """Refuse a training set whose class names (by name and order)
        differ from those the teacher checkpoint records.

        Only checked when both are known: the checkpoint's
        ``meta.dataset_meta.classes`` (mmengine writes it) and the training
        set's ``metainfo['classes']``.
        """
        self._classes_checked = True
        if not self.teacher_classes or not classes:
            return
        classes = tuple(classes)
        if classes == self.teacher_classes:
            return
        diff = [
            f'{i}: {t!r} (teacher) vs {c!r} (training set)'
            for i, (t, c) in enumerate(zip(self.teacher_classes, classes))
            if t != c
        ]
        if len(classes) != len(self.teacher_classes):
            diff.append(f'{len(self.teacher_classes)} classes (teacher) vs '
                        f'{len(classes)} (training set)')
        raise ValueError(
            f'The teacher checkpoint model.teacher_ckpt='
            f'{self.teacher_ckpt!r} was trained on other classes than '
            f'train_dataloader.dataset, by name and order: '
            f'{"; ".join(diff[:5])}{" ..." if len(diff) > 5 else ""}. The '
            f'teacher\'s class k must be the training set\'s class k: give '
            f'the dataset the teacher\'s classes (e.g. its `classes=` '
            f'argument in that order) or use a teacher trained on these '
            f'classes.')

    @staticmethod
    def _drop_teacher_state(module, state_dict, prefix, local_metadata):
        if module.save_teacher:
            return
        for key in [
                k for k in state_dict if k.startswith(prefix + 'teacher.')
        ]:
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
        """Set the train mode; the teacher stays in eval mode (BN, Dropout,
        DropPath)."""
        super().train(mode)
        self.teacher.eval()
        return self

    # -------------------------------------------------------------- forward
    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        """mmengine's entry point: ``'loss'`` trains, ``'predict'`` and
        ``'tensor'`` run the student alone."""
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

    @torch.no_grad()
    def teacher_features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's pre-logit features ``t = f_t(x)`` (no grad, eval)."""
        return self.teacher.head.pre_logits(self.teacher.extract_feat(inputs))

    def teacher_logits(self, neck_feats, pre_logits: torch.Tensor):
        """The ``teacher_logits`` the losses get: the teacher head's."""
        return self.teacher.head(neck_feats)

    def extra_loss_inputs(self) -> dict:
        """Loss inputs a subclass adds to :attr:`loss_inputs`."""
        return {}

    @staticmethod
    def _labels(data_samples) -> torch.Tensor:
        if 'gt_score' in data_samples[0]:
            return torch.stack([s.gt_score for s in data_samples])
        return torch.cat([s.gt_label for s in data_samples])

    def loss(self, inputs: torch.Tensor, data_samples: List) -> dict:
        """The student's own losses (``student.*``) and the distillation
        losses (``distill.*``) of one batch."""
        message_hub = MessageHub.get_current_instance()
        if not self._classes_checked:
            meta = message_hub.get_info('dataset_meta') or {}
            self.check_teacher_classes(meta.get('classes'))
        needed = self.needed_inputs
        t_feats = t_logits = None
        if needed & set(self.teacher_inputs):
            with torch.no_grad():
                t_neck = self.teacher.extract_feat(inputs)
                t_feats = self.teacher.head.pre_logits(t_neck)
                if 'teacher_logits' in needed:
                    t_logits = self.teacher_logits(t_neck, t_feats)
        with _HeadRecorder(self.student.head) as record:
            student_losses = self.student.loss(inputs, data_samples)
        losses = {f'student.{k}': v for k, v in student_losses.items()}
        if not self.distill_losses:
            return self._check_finite_losses(losses)
        s_feats = z = None
        if needed & {'z', 'student_feats'}:
            s_feats = self.student.head.pre_logits(record.feats)
        if 'z' in needed:
            z = s_feats if self.projector is None else self.projector(s_feats)
        available = dict(
            z=z,
            labels=self._labels(data_samples),
            student_logits=record.logits,
            teacher_logits=t_logits,
            teacher_feats=t_feats,
            epoch=self._epoch(message_hub),
            student_feats=s_feats,
            sample_idx=(self._sample_idx(data_samples, record.logits.device)
                        if 'sample_idx' in needed else None),
            **self.extra_loss_inputs())
        for name, loss_module in self.distill_losses.items():
            kwargs = {a: available[a] for a in self._loss_args[name]}
            losses[f'distill.{name}'] = loss_module(**kwargs)
        return self._check_finite_losses(losses)

    @staticmethod
    def _sample_idx(data_samples, device) -> torch.Tensor:
        """The training-set index of each sample (``(N,)`` int64), which
        mmengine's ``BaseDataset`` puts in every sample's metainfo and
        mmpretrain's ``PackInputs`` keeps (``meta_keys``)."""
        missing = [
            i for i, s in enumerate(data_samples)
            if s.metainfo.get('sample_idx') is None
        ]
        if missing:
            raise ValueError(
                f'A distillation loss needs each sample\'s training-set index '
                f'(sample_idx), but data samples {missing[:5]} of this batch '
                f'have none. Keep "sample_idx" in the meta_keys of the train '
                f'pipeline\'s PackInputs (it is there by default) and use a '
                f'dataset derived from mmengine\'s BaseDataset, which sets it.'
            )
        return torch.as_tensor(
            [int(s.metainfo['sample_idx']) for s in data_samples],
            dtype=torch.long,
            device=device)

    @staticmethod
    def _epoch(message_hub) -> int:
        """The 0-based epoch; under an iteration-based loop the completed
        passes over the training set (``EpochInfoHook``)."""
        iters_per_epoch = message_hub.get_info('iters_per_epoch')
        if iters_per_epoch:
            return message_hub.get_info('iter', 0) // iters_per_epoch
        return message_hub.get_info('epoch', 0)

    @staticmethod
    def _check_finite_losses(losses: dict) -> dict:
        """Stop at the first NaN/Inf loss, naming it, before the optimizer
        step and before anything is saved (one device sync per step, as
        logging the losses already costs)."""
        values = [
            torch.as_tensor(v).detach().float().sum()
            for k, v in losses.items() if 'loss' in k
        ]
        if values and not bool(torch.isfinite(torch.stack(values)).all()):
            hub = MessageHub.get_current_instance()
            bad = {
                k: float(torch.as_tensor(v).detach().float().sum())
                for k, v in losses.items() if 'loss' in k
                and not torch.isfinite(torch.as_tensor(v).detach()).all()
            }
            raise FloatingPointError(
                f'Non-finite loss at epoch {hub.get_info("epoch", 0)}, '
                f'iteration {hub.get_info("iter", 0)}: {bad}. Training '
                f'stopped before this step was applied or saved. Lower the '
                f'learning rate or that loss\'s loss_weight, and check the '
                f'teacher checkpoint and the inputs; resume from the last '
                f'checkpoint (--resume) once fixed.')
        return losses

    def predict(self, inputs: torch.Tensor, data_samples=None):
        """The student's predictions, with its pre-logit features attached
        when ``predict_features`` (for ``NCMetric``)."""
        feats = self.student.extract_feat(inputs)
        preds = self.student.head.predict(feats, data_samples)
        if self.predict_features:
            attach_features(preds, self.student.head.pre_logits(feats),
                            self.student.head)
        return preds


def is_distiller_type(model_type) -> bool:
    """Whether a config's ``model.type`` (a registry name or a class) is a
    :class:`SingleTeacherDistiller` or a subclass of it."""
    cls = MODELS.get(model_type) if isinstance(model_type, str) \
        else model_type
    return isinstance(cls, type) and issubclass(cls, SingleTeacherDistiller)

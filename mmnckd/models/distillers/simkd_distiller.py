"""SimKDDistiller: reuse the teacher's classifier, regress its feature map.

SimKD (Chen et al., CVPR 2022, "Knowledge Distillation with the Reused
Teacher Classifier")::

    S = g(F_s(x))                  # SimKDNeck's projector, teacher width
    logits = h_t(GAP(S))           # the teacher's classifier, frozen
    L = MSE(S, T(x))               # T: the teacher's last feature map

The student is a plain ``ImageClassifier``: its backbone, a ``SimKDNeck``
and a ``FrozenLinearClsHead`` into which this distiller copies the teacher's
``head.fc`` once the teacher is loaded (``init_weights``/``load_teacher``).
What gets exported (``export_student.py``) therefore predicts through the
teacher's classifier with no teacher at hand. SimKD trains on the feature
loss alone: the student head's cross-entropy has ``loss_weight=0`` in the
configs (the reference scripts run SimKD with the CE and KL weights at 0).

Two loss inputs are added to :attr:`SingleTeacherDistiller.loss_inputs`:
``student_map`` (``S``, the projector's output before pooling) and
``teacher_map`` (the last output of the teacher's backbone), both recorded
with forward hooks during the ordinary student and teacher passes.
"""
from typing import List

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from .single_teacher_distiller import SingleTeacherDistiller


class _OutputRecorder:
    """Records the output of a module during one forward, through a public
    forward hook (mmrazor's recorder idea)."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.output = None

    def __enter__(self):
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def _hook(self, module, args, output):
        self.output = output

    def __exit__(self, *exc):
        self._handle.remove()


@MODELS.register_module()
class SimKDDistiller(SingleTeacherDistiller):
    """SimKD: the student reuses the frozen teacher classifier.

    Build-time checks: the student's neck is a ``SimKDNeck`` whose
    ``out_channels`` is the teacher's feature dim; the student's and the
    teacher's heads have an ``fc`` ``nn.Linear`` of the same shape; the
    student's is frozen (``FrozenLinearClsHead``).

    Args:
        *args, **kwargs: The arguments of :class:`SingleTeacherDistiller`.
    """

    loss_inputs = SingleTeacherDistiller.loss_inputs + ('student_map',
                                                        'teacher_map')
    teacher_inputs = SingleTeacherDistiller.teacher_inputs + ('teacher_map', )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._check_simkd_parts()
        self._recorders = None

    def _check_simkd_parts(self) -> None:
        neck = getattr(self.student, 'neck', None)
        if not isinstance(getattr(neck, 'projector', None), nn.Module) or \
                not hasattr(neck, 'project'):
            raise ValueError(
                f'SimKDDistiller needs model.student.neck=dict(type='
                f'"SimKDNeck", in_channels=<student channels>, out_channels='
                f'{self.teacher_feat_dim}), got {type(neck).__name__}.')
        if neck.out_channels != self.teacher_feat_dim:
            raise ValueError(
                f'model.student.neck.out_channels={neck.out_channels} but '
                f'the teacher feature dim is {self.teacher_feat_dim}: SimKD '
                f'projects the student to the teacher\'s width; set '
                f'out_channels={self.teacher_feat_dim}.')
        t_fc = getattr(self.teacher.head, 'fc', None)
        s_fc = getattr(self.student.head, 'fc', None)
        if not isinstance(t_fc, nn.Linear):
            raise ValueError(
                f'SimKDDistiller reuses the teacher\'s linear classifier '
                f'(head.fc), but the teacher head '
                f'{type(self.teacher.head).__name__} has none: use a '
                f'LinearClsHead teacher.')
        shape = tuple(t_fc.weight.shape)
        if not isinstance(s_fc, nn.Linear) or \
                tuple(s_fc.weight.shape) != shape or \
                (s_fc.bias is None) != (t_fc.bias is None):
            raise ValueError(
                f'model.student.head must hold a copy of the teacher\'s '
                f'classifier ({shape[0]} classes x {shape[1]} inputs, bias='
                f'{t_fc.bias is not None}): set model.student.head=dict(type='
                f'"FrozenLinearClsHead", num_classes={shape[0]}, in_channels='
                f'{shape[1]}).')
        if any(p.requires_grad for p in s_fc.parameters()):
            raise ValueError(
                f'model.student.head ({type(self.student.head).__name__}) '
                f'trains its fc, but SimKD keeps the reused teacher '
                f'classifier fixed: use type="FrozenLinearClsHead".')

    @torch.no_grad()
    def reuse_teacher_head(self) -> None:
        """Copy the teacher's ``head.fc`` into the student's (frozen)."""
        t_fc, s_fc = self.teacher.head.fc, self.student.head.fc
        s_fc.weight.copy_(t_fc.weight)
        if t_fc.bias is not None:
            s_fc.bias.copy_(t_fc.bias)

    def init_weights(self) -> None:
        """Initialise, load the teacher, then copy its classifier."""
        super().init_weights()
        self.reuse_teacher_head()

    def load_teacher(self, filename: str) -> None:
        """Load the teacher (strictly), then copy its classifier."""
        super().load_teacher(filename)
        self.reuse_teacher_head()

    def loss(self, inputs: torch.Tensor, data_samples: List) -> dict:
        """As :meth:`SingleTeacherDistiller.loss`, recording the student's
        projected map and the teacher's last backbone output."""
        with _OutputRecorder(self.student.neck.projector) as student, \
                _OutputRecorder(self.teacher.backbone) as teacher:
            self._recorders = (student, teacher)
            try:
                return super().loss(inputs, data_samples)
            finally:
                self._recorders = None

    def extra_loss_inputs(self) -> dict:
        """``student_map`` and ``teacher_map`` (None when not recorded)."""
        inputs = super().extra_loss_inputs()
        student, teacher = self._recorders or (None, None)
        t_out = getattr(teacher, 'output', None)
        if isinstance(t_out, (tuple, list)):
            t_out = t_out[-1]
        inputs.update(
            student_map=getattr(student, 'output', None), teacher_map=t_out)
        return inputs

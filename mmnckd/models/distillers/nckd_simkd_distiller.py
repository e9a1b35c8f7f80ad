"""NCKDSimKDDistiller: NCKD's prototype losses on top of SimKD.

The student is SimKD's (``SimKDNeck`` + frozen reused teacher classifier,
:class:`SimKDDistiller`); the distiller also holds the teacher prototypes of
:class:`NCKDDistiller`, so NC1 (``PrototypeAlignLoss``) and NC2
(``ETFStructureLoss``) act on ``z``, the pooled projected student feature:
the input of the reused classifier, already in the teacher's feature space,
where the prototypes live. No extra projector is needed::

    L = L_SimKD(S, T) + L_NC1(z, y, P) + L_NC2(z, y, P),  z = GAP(S)
"""
from mmpretrain.registry import MODELS

from .nckd_distiller import NCKDDistiller
from .simkd_distiller import SimKDDistiller


@MODELS.register_module()
class NCKDSimKDDistiller(SimKDDistiller, NCKDDistiller):
    """SimKD with NCKD's teacher prototypes.

    Args:
        head_weights, kd_target: As :class:`NCKDDistiller` (the student
            head is not an ``ETFHead``, so ``head_weights`` is unused).
        *args, **kwargs: The arguments of :class:`SingleTeacherDistiller`.
    """

    loss_inputs = tuple(
        dict.fromkeys(SimKDDistiller.loss_inputs + NCKDDistiller.loss_inputs))

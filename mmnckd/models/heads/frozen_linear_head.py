"""FrozenLinearClsHead: a linear classifier whose weights are never trained.

SimKD (Chen et al., CVPR 2022) reuses the teacher's classifier for the
student: ``logits = W x + b`` with the teacher's ``W`` (``K x C_t``) and
``b``, copied in by ``SimKDDistiller`` once the teacher is loaded and kept
fixed. As an mmpretrain head of the student it is part of the exported
plain ``ImageClassifier``, so the student predicts through the teacher's
classifier at test time.
"""
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS


@MODELS.register_module()
class FrozenLinearClsHead(LinearClsHead):
    """``LinearClsHead`` with ``fc`` frozen (``requires_grad=False``).

    ``fc.weight`` and ``fc.bias`` stay parameters, so they are saved in and
    loaded from checkpoints under the keys of a ``LinearClsHead``, but no
    gradient reaches them and ``DistillerOptimWrapperConstructor`` leaves
    them out of the optimizer. Their values come from elsewhere: the
    teacher's classifier (``SimKDDistiller``) or a checkpoint; the
    ``init_cfg`` initialisation only fills them until then.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Input feature dim.
        **kwargs: The other ``LinearClsHead`` arguments (``loss``, ``topk``,
            ``init_cfg``...). SimKD trains without cross-entropy: give it
            ``loss=dict(type='CrossEntropyLoss', loss_weight=0.0)``.
    """

    def __init__(self, num_classes: int, in_channels: int, **kwargs):
        super().__init__(num_classes, in_channels, **kwargs)
        self.fc.requires_grad_(False)

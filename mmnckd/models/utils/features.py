"""Pre-logit features and classifier weights on predictions (for NCMetric).

``classifier_weight(head)`` is the ``K x d`` weight of a classification head:
``ETFHead.weight`` or a linear head's ``fc.weight`` (None for other heads).
``attach_features`` puts each sample's pre-logit feature (``pre_logits``) and
the shared classifier weight (``cls_weight``, one tensor referenced by every
sample, not copied) on the predicted ``DataSample``s.
"""
from typing import List, Optional

import torch


def classifier_weight(head) -> Optional[torch.Tensor]:
    weight = getattr(head, 'weight', None)
    if weight is None and hasattr(head, 'fc'):
        weight = getattr(head.fc, 'weight', None)
    return None if weight is None else weight.detach()


def attach_features(preds: List, pre_logits: torch.Tensor, head) -> List:
    pre_logits = pre_logits.detach()
    weight = classifier_weight(head)
    for i, sample in enumerate(preds):
        sample.set_field(pre_logits[i], 'pre_logits', field_type='data')
        if weight is not None:
            sample.set_field(weight, 'cls_weight', field_type='metainfo')
    return preds

from .contrast_memory import ContrastMemory
from .crd_loss import CRDLoss
from .dkd_loss import DKDLoss
from .etf_structure_loss import ETFStructureLoss
from .kd_loss import KDLoss
from .pre_logit_structure_loss import PreLogitStructureLoss
from .prototype_align_loss import PrototypeAlignLoss
from .simkd_loss import SimKDLoss
from .utils import label_weights

__all__ = [
    'PrototypeAlignLoss', 'ETFStructureLoss', 'PreLogitStructureLoss',
    'KDLoss', 'DKDLoss', 'CRDLoss', 'ContrastMemory', 'SimKDLoss',
    'label_weights'
]

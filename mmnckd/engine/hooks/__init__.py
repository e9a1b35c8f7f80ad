from .epoch_info_hook import EpochInfoHook
from .pre_logits_hook import PreLogitsHook
from .random_state_hook import RandomStateHook
from .rank_consistency_hook import RankConsistencyHook
from .teacher_prototype_hook import TeacherPrototypeHook

__all__ = [
    'TeacherPrototypeHook', 'RankConsistencyHook', 'PreLogitsHook',
    'RandomStateHook', 'EpochInfoHook'
]

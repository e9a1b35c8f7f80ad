from .pre_logits_hook import PreLogitsHook
from .rank_consistency_hook import RankConsistencyHook
from .teacher_prototype_hook import TeacherPrototypeHook

__all__ = ['TeacherPrototypeHook', 'RankConsistencyHook', 'PreLogitsHook']

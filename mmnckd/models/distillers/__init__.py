from .nckd_distiller import NCKDDistiller
from .nckd_simkd_distiller import NCKDSimKDDistiller
from .simkd_distiller import SimKDDistiller
from .single_teacher_distiller import SingleTeacherDistiller, is_distiller_type

__all__ = [
    'SingleTeacherDistiller', 'NCKDDistiller', 'SimKDDistiller',
    'NCKDSimKDDistiller', 'is_distiller_type'
]

from .nckd_distiller import NCKDDistiller
from .single_teacher_distiller import SingleTeacherDistiller, is_distiller_type

__all__ = ['SingleTeacherDistiller', 'NCKDDistiller', 'is_distiller_type']

from .nckd_distiller import NCKDDistiller

__all__ = ['NCKDDistiller']

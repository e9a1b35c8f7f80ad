from .nc_metrics import NCAccumulator, nc_metrics
from .teacher_geometry_gap import teacher_geometry_gap

__all__ = ['NCAccumulator', 'nc_metrics', 'teacher_geometry_gap']

from .functional import NCAccumulator, nc_metrics, teacher_geometry_gap
from .metrics import NCMetric

__all__ = ['NCAccumulator', 'nc_metrics', 'teacher_geometry_gap', 'NCMetric']

from .functional import NCAccumulator, nc_metrics
from .metrics import NCMetric

__all__ = ['NCAccumulator', 'nc_metrics', 'NCMetric']

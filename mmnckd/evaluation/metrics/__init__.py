from .nc_metric import NCMetric

__all__ = ['NCMetric']

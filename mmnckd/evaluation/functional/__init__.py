from .nc_metrics import NCAccumulator, nc_metrics

__all__ = ['NCAccumulator', 'nc_metrics']

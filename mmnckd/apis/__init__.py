from .nc_analysis import analyse

__all__ = ['analyse']

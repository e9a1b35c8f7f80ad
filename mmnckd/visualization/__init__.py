"""Plots for Neural Collapse analysis (matplotlib, Agg backend)."""
from .nc_plots import (latest_scalars_file, load_val_scalars, plot_nc_curves,
                       plot_tsne)

__all__ = [
    'plot_tsne', 'plot_nc_curves', 'load_val_scalars', 'latest_scalars_file'
]

from .etf_head import ETFHead, default_etf_scale, peak_etf_scale
from .frozen_linear_head import FrozenLinearClsHead

__all__ = [
    'ETFHead', 'FrozenLinearClsHead', 'default_etf_scale', 'peak_etf_scale'
]

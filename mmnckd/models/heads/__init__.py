from .etf_head import ETFHead, default_etf_scale, peak_etf_scale

__all__ = ['ETFHead', 'default_etf_scale', 'peak_etf_scale']

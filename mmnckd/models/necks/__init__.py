from .projector import Projector
from .simkd_neck import SimKDNeck

__all__ = ['Projector', 'SimKDNeck']

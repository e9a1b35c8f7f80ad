from .projector import Projector

__all__ = ['Projector']

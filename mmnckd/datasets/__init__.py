from .fashion_mnist import FashionMNISTIDX
from .omniglot import CorruptOmniglotError, Omniglot

__all__ = ['Omniglot', 'FashionMNISTIDX', 'CorruptOmniglotError']

from .fashion_mnist import FashionMNISTIDX
from .omniglot import Omniglot

__all__ = ['Omniglot', 'FashionMNISTIDX']

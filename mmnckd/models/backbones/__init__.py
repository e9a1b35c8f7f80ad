"""CIFAR-100 KD-benchmark backbones (CRD / mdistiller model family)."""
from .cifar_mobilenetv2 import CIFARMobileNetV2
from .cifar_resnet import CIFARResNet
from .cifar_shufflenet import CIFARShuffleNetV1, CIFARShuffleNetV2
from .cifar_vgg import CIFARVGG
from .wide_resnet import CIFARWideResNet

__all__ = [
    'CIFARResNet', 'CIFARWideResNet', 'CIFARVGG', 'CIFARMobileNetV2',
    'CIFARShuffleNetV1', 'CIFARShuffleNetV2'
]

"""``conv - BN [- ReLU]`` layer lists of the CIFAR MobileNetV2 / ShuffleNets.

The conv is bias-free with ``kernel_size // 2`` padding (CRD's
``conv_bn`` / ``conv_1x1_bn`` helpers).
"""
import torch.nn as nn
from mmcv.cnn import build_norm_layer


def conv_bn_layers(in_channels, out_channels, kernel_size, stride, norm_cfg,
                   groups=1, act=True) -> list:
    """``[Conv2d, norm]`` plus a ``ReLU`` when ``act`` (a list, to be
    unpacked into an ``nn.Sequential``)."""
    layers = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=groups,
            bias=False),
        build_norm_layer(norm_cfg, out_channels)[1]
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return layers

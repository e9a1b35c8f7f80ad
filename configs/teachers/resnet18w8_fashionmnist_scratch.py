# The Fashion-MNIST student trained alone (the "student alone" baseline).
_base_ = ['./resnet18w32_fashionmnist.py']
model = dict(
    backbone=dict(stem_channels=8, base_channels=8),
    head=dict(in_channels=64))

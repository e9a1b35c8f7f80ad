# The Fashion-MNIST student trained alone (the "student alone" baseline).
_base_ = ['../teachers/resnet18w32_1xb128_fashion-mnist.py']
model = dict(
    backbone=dict(stem_channels=8, base_channels=8), head=dict(in_channels=64))
# students (alone, KD, DKD, NCKD) train 15 epochs; the teacher 60
param_scheduler = dict(T_max=15)
train_cfg = dict(max_epochs=15, val_interval=3)

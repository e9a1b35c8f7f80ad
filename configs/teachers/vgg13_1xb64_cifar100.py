# VGG-13 with BatchNorm (CRD's CIFAR variant): a teacher of the CIFAR-100 KD
# benchmark; 512-d pre-logit features. The CRD / mdistiller recipe: 240 epochs,
# batch 64 on one GPU.
# The distillation configs read its last checkpoint,
# work_dirs/vgg13_1xb64_cifar100/epoch_240.pth:
#   python tools/train.py configs/teachers/vgg13_1xb64_cifar100.py
_base_ = [
    '../_base_/datasets/cifar100_bs64_kd.py',
    '../_base_/schedules/cifar100_kd_240e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CIFARVGG', arch='vgg13'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# ResNet-50 for CIFAR: mmpretrain's ResNet_CIFAR, a bottleneck ResNet-50 with a
# 3x3 stride-1 stem and no max-pool, like CRD's ResNet50: a teacher of the
# CIFAR-100 KD benchmark; 2048-d pre-logit features. The CRD / mdistiller
# recipe: 240 epochs, batch 64 on one GPU.
# The distillation configs read its last checkpoint,
# work_dirs/resnet50_1xb64_cifar100/epoch_240.pth:
#   python tools/train.py configs/teachers/resnet50_1xb64_cifar100.py
_base_ = [
    '../_base_/datasets/cifar100_bs64_kd.py',
    '../_base_/schedules/cifar100_kd_240e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

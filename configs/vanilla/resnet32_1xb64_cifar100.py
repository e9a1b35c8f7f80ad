# ResNet-32 (CIFAR ResNet, 16-16-32-64 channels): a student of the CIFAR-100 KD
# benchmark, trained alone as the baseline; 64-d pre-logit features. The CRD /
# mdistiller recipe: 240 epochs, batch 64 on one GPU.
#   python tools/train.py configs/vanilla/resnet32_1xb64_cifar100.py
_base_ = [
    '../_base_/datasets/cifar100_bs64_kd.py',
    '../_base_/schedules/cifar100_kd_240e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CIFARResNet', arch='resnet32'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

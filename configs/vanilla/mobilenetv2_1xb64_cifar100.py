# MobileNetV2 at width 0.5 (CRD's CIFAR 'mobile_half'): a student of the
# CIFAR-100 KD benchmark, trained alone as the baseline; 1280-d pre-logit
# features. The CRD / mdistiller recipe: 240 epochs, batch 64 on one GPU.
#   python tools/train.py configs/vanilla/mobilenetv2_1xb64_cifar100.py
_base_ = [
    '../_base_/datasets/cifar100_bs64_kd.py',
    '../_base_/schedules/cifar100_kd_240e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CIFARMobileNetV2', widen_factor=0.5),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=1280,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# ShuffleNet / MobileNet students use lr 0.01 (CRD, mdistiller)
optim_wrapper = dict(optimizer=dict(lr=0.01))

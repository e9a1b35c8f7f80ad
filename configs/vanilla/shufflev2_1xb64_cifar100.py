# ShuffleNetV2 1.0x (CRD's CIFAR variant): a student of the CIFAR-100 KD
# benchmark, trained alone as the baseline; 1024-d pre-logit features. The CRD
# / mdistiller recipe: 240 epochs, batch 64 on one GPU.
#   python tools/train.py configs/vanilla/shufflev2_1xb64_cifar100.py
_base_ = [
    '../_base_/datasets/cifar100_bs64_kd.py',
    '../_base_/schedules/cifar100_kd_240e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CIFARShuffleNetV2', widen_factor=1.0),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# ShuffleNet / MobileNet students use lr 0.01 (CRD, mdistiller)
optim_wrapper = dict(optimizer=dict(lr=0.01))

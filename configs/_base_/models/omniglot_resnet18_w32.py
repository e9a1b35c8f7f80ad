# Teacher for Omniglot-242 (1x28x28): mmpretrain's CIFAR ResNet-18 at half
# width (32-64-128-256 channels) with every stage downsampling
# (28 -> 14 -> 7 -> 4 -> 2), 256-d GAP features, 2.9 M params.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        in_channels=1,
        stem_channels=32,
        base_channels=32,
        strides=(2, 2, 2, 2),
        out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=242,
        in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# The ETF-head form with a learnable linear head that starts from the teacher
# prototypes (W = a P, b = 0) and KD on the teacher's logits: tried on the
# validation splits, not selected (configs/nckd/README.md).
_base_ = ['./nckd_resnet18w32_resnet18w8_1xb128_fashion-mnist.py']
model = dict(
    kd_target='logits',
    head_init='prototypes',
    student=dict(
        head=dict(
            _delete_=True,
            type='LinearClsHead',
            num_classes=10,
            in_channels=256,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0))))

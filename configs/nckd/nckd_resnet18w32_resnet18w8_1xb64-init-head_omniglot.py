# The ETF-head form with a learnable linear head that starts from the teacher
# prototypes (W = a P, b = 0) and KD on the teacher's logits: tried on the
# validation splits, not selected (configs/nckd/README.md).
_base_ = ['./nckd_resnet18w32_resnet18w8_1xb64_omniglot.py']
model = dict(
    kd_target='logits',
    head_init='prototypes',
    # the ETF head's num_classes and in_channels (256) stay
    student=dict(head=dict(type='LinearClsHead')))

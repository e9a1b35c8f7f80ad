# An "NC teacher" on Omniglot-242: the teacher architecture with mmnckd's
# ETFHead (fixed canonical simplex-ETF classifier, learnable scale), so its
# class means are driven towards a simplex ETF by construction (the "NC
# teacher" option of docs/en/method.md: train an NC teacher, then distil).
_base_ = ['./resnet18w32_1xb64_omniglot.py']
model = dict(
    head=dict(
        _delete_=True,
        type='ETFHead',
        num_classes=242,
        in_channels=256,
        learnable_scale=True,
        topk=(1, 5)))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))

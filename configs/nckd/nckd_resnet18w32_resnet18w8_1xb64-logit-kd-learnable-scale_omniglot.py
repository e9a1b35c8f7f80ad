_base_ = ['./nckd_resnet18w32_resnet18w8_1xb64-logit-kd_omniglot.py']
model = dict(student=dict(head=dict(learnable_scale=True)))
# the head's log-scale is a parameter now: no weight decay on it
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))

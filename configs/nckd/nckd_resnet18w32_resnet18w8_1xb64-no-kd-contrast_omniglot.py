_base_ = ['./nckd_resnet18w32_resnet18w8_1xb64-no-kd_omniglot.py']
model = dict(distill_losses=dict(loss_nc1=dict(contrast_weight=1.0)))

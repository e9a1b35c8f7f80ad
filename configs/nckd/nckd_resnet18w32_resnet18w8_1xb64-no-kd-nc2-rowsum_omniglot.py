_base_ = ['./nckd_resnet18w32_resnet18w8_1xb64-no-kd_omniglot.py']
model = dict(distill_losses=dict(loss_nc2=dict(reduction='row_sum')))

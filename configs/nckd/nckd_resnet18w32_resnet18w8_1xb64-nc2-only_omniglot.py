_base_ = ['./nckd_resnet18w32_resnet18w8_1xb64-plugin-kd_omniglot.py']
model = dict(
    distill_losses=dict(_delete_=True, loss_nc2=dict(type='ETFStructureLoss')))

_base_ = ['./nckd_resnet18w32_resnet18w8_1xb64_omniglot.py']
model = dict(
    kd_target='logits',
    distill_losses=dict(
        _delete_=True,
        loss_nc1=dict(type='PrototypeAlignLoss'),
        loss_nc2=dict(type='ETFStructureLoss')))

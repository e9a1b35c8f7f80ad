_base_ = ['./nckd_resnet50_mobilenetv2_8xb32_in1k.py']
model = dict(
    kd_target='logits',
    distill_losses=dict(
        _delete_=True,
        loss_nc1=dict(type='PrototypeAlignLoss'),
        loss_nc2=dict(type='ETFStructureLoss')))

# Ablation: NCKD without the KD term on Fashion-MNIST (NC1 + NC2 + NC3 head;
# no teacher forward per step).
_base_ = ['./nckd_r18w32_r18w8_fashionmnist.py']

model = dict(
    kd_target='logits',
    distill_losses=dict(
        _delete_=True,
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=1.0),
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=1.0,
                      momentum=0.9, target='teacher')))

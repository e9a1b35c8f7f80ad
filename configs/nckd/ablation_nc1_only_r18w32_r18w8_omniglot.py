# Ablation: NC1 prototype alignment only (learned linear head, no KD, no NC2).
_base_ = ['./nckd_plugin_kd_r18w32_r18w8_omniglot.py']
model = dict(
    distill_losses=dict(
        _delete_=True,
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=1.0)))

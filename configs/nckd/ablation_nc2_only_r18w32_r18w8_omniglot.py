# Ablation: NC2 ETF-structure transfer only (learned linear head, no KD/NC1).
_base_ = ['./nckd_plugin_kd_r18w32_r18w8_omniglot.py']
model = dict(
    distill_losses=dict(
        _delete_=True,
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=1.0, momentum=0.9,
                      target='teacher')))

# NCKD + Hinton KD on Omniglot-242 (plug-in on top of KD).
_base_ = ['./nckd_r18w32_r18w8_omniglot.py']

model = dict(
    distill_losses=dict(
        loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=1.0)))

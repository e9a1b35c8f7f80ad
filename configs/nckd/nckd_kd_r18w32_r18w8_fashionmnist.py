# NCKD + Hinton KD on Fashion-MNIST.
_base_ = ['./nckd_r18w32_r18w8_fashionmnist.py']

model = dict(
    distill_losses=dict(
        loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=1.0)))

# Decoupled KD on Fashion-MNIST (alpha 1, beta 8, T 4, warm-up 3 of 15 epochs).
_base_ = ['../kd/kd_resnet18w32_resnet18w8_1xb128_fashion-mnist.py']

model = dict(
    distill_losses=dict(
        _delete_=True,
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0, warmup_epochs=3)))

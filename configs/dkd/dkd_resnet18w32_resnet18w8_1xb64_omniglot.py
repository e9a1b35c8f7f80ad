# Decoupled KD on Omniglot-242 (CIFAR defaults: alpha 1, beta 8, T 4; the
# warm-up scaled to the 30-epoch schedule).
_base_ = ['../kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py']

model = dict(
    distill_losses=dict(
        _delete_=True,
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0, warmup_epochs=5)))

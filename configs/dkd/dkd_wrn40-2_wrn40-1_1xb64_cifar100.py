# Decoupled KD on CIFAR-100: wrn40-2 teacher -> wrn40-1 student.
# mdistiller's DKD (configs/cifar100/dkd/wrn40_2_wrn_40_1.yaml): CE weight 1,
# alpha 1, beta 6 (set in mdistiller's pair config), temperature 4, linear
# warm-up over 20 epochs.
_base_ = ['../kd/kd_wrn40-2_wrn40-1_1xb64_cifar100.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=1.0))),
    distill_losses=dict(
        _delete_=True,
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=6.0, tau=4.0, warmup_epochs=20)))

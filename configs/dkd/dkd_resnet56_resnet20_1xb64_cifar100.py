# Decoupled KD on CIFAR-100: resnet56 teacher -> resnet20 student.
# mdistiller's DKD (configs/cifar100/dkd/res56_res20.yaml): CE weight 1, alpha
# 1, beta 2 (set in mdistiller's pair config), temperature 4, linear warm-up
# over 20 epochs.
_base_ = ['../kd/kd_resnet56_resnet20_1xb64_cifar100.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=1.0))),
    distill_losses=dict(
        _delete_=True,
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=2.0, tau=4.0, warmup_epochs=20)))

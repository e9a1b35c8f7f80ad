# Decoupled KD on CIFAR-100: vgg13 teacher -> vgg8 student.
# mdistiller's DKD (configs/cifar100/dkd/vgg13_vgg8.yaml): CE weight 1, alpha
# 1, beta 6 (set in mdistiller's pair config), temperature 4, linear warm-up
# over 20 epochs.
_base_ = ['../kd/kd_vgg13_vgg8_1xb64_cifar100.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=1.0))),
    distill_losses=dict(
        _delete_=True,
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=6.0, tau=4.0, warmup_epochs=20)))

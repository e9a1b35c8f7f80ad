# Decoupled KD on CIFAR-100: resnet32x4 teacher -> shufflev1 student.
# mdistiller's DKD (configs/cifar100/dkd/res32x4_shuv1.yaml): CE weight 1,
# alpha 1, mdistiller's default beta 8 (its pair config keeps it), temperature
# 4, linear warm-up over 20 epochs.
_base_ = ['../kd/kd_resnet32x4_shufflev1_1xb64_cifar100.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=1.0))),
    distill_losses=dict(
        _delete_=True,
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0, warmup_epochs=20)))

# Decoupled KD on ImageNet-1k: ResNet-34 -> ResNet-18.
# mdistiller's DKD (configs/imagenet/r34_r18/dkd.yaml): CE weight 1, alpha 1,
# beta 0.5, temperature 1, linear warm-up over 1 epoch.
_base_ = ['../kd/kd_resnet34_resnet18_8xb32_in1k.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=1.0))),
    distill_losses=dict(
        _delete_=True,
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=0.5, tau=1.0, warmup_epochs=1)))

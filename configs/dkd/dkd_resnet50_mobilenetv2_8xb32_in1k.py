# Decoupled KD on ImageNet-1k: ResNet-50 -> MobileNetV2.
# mdistiller's DKD (configs/imagenet/r50_mv2/dkd.yaml): CE weight 1, alpha 1,
# beta 2 (not the 0.5 of ResNet-34 -> ResNet-18), temperature 1, linear
# warm-up over 1 epoch.
_base_ = ['../kd/kd_resnet50_mobilenetv2_8xb32_in1k.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=1.0))),
    distill_losses=dict(
        _delete_=True,
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=2.0, tau=1.0, warmup_epochs=1)))

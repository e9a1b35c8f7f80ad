_base_ = ['./nckd_resnet18w32_resnet18w8_1xb64-no-kd_omniglot.py']
# DKD on the teacher's logits next to NC1 + NC2
model = dict(
    distill_losses=dict(loss_dkd=dict(type='DKDLoss', warmup_epochs=5)))

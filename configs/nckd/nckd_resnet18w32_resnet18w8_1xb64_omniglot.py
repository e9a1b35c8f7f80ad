_base_ = ['../kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    kd_target='prototype_cosine',
    student=dict(
        # sync_bn: the projector's BatchNorm1d normalises over the samples of
        # all processes (GlobalBatchNorm1d); a no-op on one process
        neck=dict(_delete_=True, type='Projector', in_channels=64,
                  sync_bn=True,
                  out_channels=256, mode='mlp'),
        head=dict(_delete_=True, type='ETFHead', num_classes=242,
                  in_channels=256)),
    distill_losses={{_base_.nckd_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

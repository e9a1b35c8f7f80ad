_base_ = ['../kd/kd_resnet32x4_resnet8x4_1xb64_cifar100.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    kd_target='prototype_cosine',
    student=dict(
        neck=dict(_delete_=True, type='Projector', in_channels=256,
                  sync_bn=True,
                  out_channels=256, hidden_channels=256, mode='mlp'),
        head=dict(_delete_=True, type='ETFHead', num_classes=100,
                  in_channels=256)),
    distill_losses={{_base_.nckd_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

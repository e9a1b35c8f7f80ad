_base_ = ['../kd/kd_resnet50_mobilenetv2_8xb32_in1k.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    kd_target='prototype_cosine',
    student=dict(
        neck=dict(_delete_=True, type='Projector', in_channels=1280,
                  sync_bn=True,
                  out_channels=2048, hidden_channels=2048, mode='mlp'),
        head=dict(_delete_=True, type='ETFHead', num_classes=1000,
                  in_channels=2048)),
    distill_losses={{_base_.nckd_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

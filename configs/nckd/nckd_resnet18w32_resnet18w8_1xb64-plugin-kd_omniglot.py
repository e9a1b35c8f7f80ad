_base_ = ['../kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    projector=dict(
        type='Projector', in_channels=64, out_channels=256, mode='mlp',
        sync_bn=True),
    # NC1 + NC2 at 0.3 (chosen on validation), added to the KD loss
    distill_losses={{_base_.nckd_plugin_kd_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

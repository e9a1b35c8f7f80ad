_base_ = ['../kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    # a linear projector (64 -> 256, BatchNorm) to the teacher's width: chosen
    # on validation over the MLP (configs/nckd/README.md)
    projector=dict(
        type='Projector', in_channels=64, out_channels=256, mode='linear',
        sync_bn=True),
    # NC1 + NC2 at 0.3 (chosen on validation), added to the KD loss
    distill_losses={{_base_.nckd_plugin_kd_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

# NCKD on top of CRD (Omniglot-242): CRD's loss (CE 1.0 + 0.8 * CRD) plus NC1
# + NC2 on an MLP projection of the student's features to the teacher's 256
# dims (the plug-in form); CRD itself keeps the unprojected 64-d features.
_base_ = ['../crd/crd_resnet18w32_resnet18w8_1xb64_omniglot.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    projector=dict(
        type='Projector', in_channels=64, out_channels=256, mode='mlp',
        sync_bn=True),
    distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

# NCKD on top of CRD (CIFAR-100, wrn40-2 -> wrn40-1): CE 1.0 + 0.8 * CRD plus
# NC1 + NC2 on an MLP projection (64 -> 256 -> 128) of the student's features.
_base_ = ['../crd/crd_wrn40-2_wrn40-1_1xb64_cifar100.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    projector=dict(
        type='Projector', in_channels=64, out_channels=128,
        sync_bn=True,
        hidden_channels=256, mode='mlp'),
    distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

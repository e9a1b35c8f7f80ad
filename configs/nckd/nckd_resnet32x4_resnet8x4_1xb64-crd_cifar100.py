# NCKD on top of CRD (CIFAR-100, resnet32x4 -> resnet8x4): CE 1.0 + 0.8 * CRD
# plus NC1 + NC2 on an MLP projection (256 -> 256 -> 256) of the student's
# features.
_base_ = ['../crd/crd_resnet32x4_resnet8x4_1xb64_cifar100.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    projector=dict(
        type='Projector', in_channels=256, out_channels=256,
        sync_bn=True,
        hidden_channels=256, mode='mlp'),
    distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

_base_ = ['../kd/kd_resnet56_resnet20_1xb64_cifar100.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    projector=dict(
        type='Projector', in_channels=64, out_channels=64, mode='mlp',
        sync_bn=True),
    distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

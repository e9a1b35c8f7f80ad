_base_ = ['../kd/kd_resnet34_resnet18_8xb32_in1k.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    projector=dict(type='Projector', in_channels=512, out_channels=512,
                   sync_bn=True),
    distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

# NCKD as a plug-in on KD, keeping the student's learned linear head: NC1 and
# NC2 act as regularisers on a projection of the student features (the
# projector is used for the losses only and is not exported).
_base_ = ['../kd/kd_r18w32_r18w8_omniglot.py']

model = dict(
    type='NCKDDistiller',
    projector=dict(type='Projector', in_channels=64, out_channels=256,
                   hidden_channels=256, mode='mlp'),
    distill_losses=dict(
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=1.0),
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=1.0,
                      momentum=0.9, target='teacher')))
custom_hooks = [dict(type='TeacherPrototypeHook')]
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='NCMetric')]
test_evaluator = val_evaluator

# Parts of an NCKD config (docs/en/method.md), as uniquely named variables. A
# leaf inherits its KD config and this file, and uses them:
#   model = dict(type='NCKDDistiller', ...,
#                distill_losses={{_base_.nckd_losses}})
# ETF-head form: NC1 + NC2 + KD; the leaf gives the student a Projector neck
# and an ETFHead, and sets kd_target='prototype_cosine'.
nckd_losses = dict(
    _delete_=True,
    loss_nc1=dict(type='PrototypeAlignLoss'),
    loss_nc2=dict(type='ETFStructureLoss'),
    loss_kd=dict(type='KDLoss'))
# Plug-in form: NC1 + NC2 added to the KD config's own losses; the leaf sets a
# distiller projector to the teacher's width.
nckd_plugin_losses = dict(
    loss_nc1=dict(type='PrototypeAlignLoss'),
    loss_nc2=dict(type='ETFStructureLoss'))
# The plug-in form on KD as recommended for Omniglot-242 and Fashion-MNIST,
# chosen on their validation splits together (configs/nckd/README.md,
# "Selected on validation"): NC1 and NC2 at 0.3 (against 1.0), and a linear
# projector (against the MLP) from the ResNet-18 w8 student (64-d) to the w32
# teacher (256-d), its BatchNorm statistics over all processes
nckd_plugin_kd_losses = dict(
    loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=0.3),
    loss_nc2=dict(type='ETFStructureLoss', loss_weight=0.3))
nckd_plugin_kd_projector_64_256 = dict(
    type='Projector', in_channels=64, out_channels=256, mode='linear',
    sync_bn=True)
nckd_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='NCMetric')]
custom_hooks = [dict(type='TeacherPrototypeHook')]

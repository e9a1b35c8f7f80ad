# The plug-in form with NC2 on the student's own pre-logit features (64-d)
# instead of the projection, so no projector stands between NC2 and the
# features it shapes; NC1 stays on the projection. Tried on the validation
# splits, not selected (configs/nckd/README.md).
_base_ = ['./nckd_resnet18w32_resnet18w8_1xb64-plugin-kd_omniglot.py']
model = dict(distill_losses=dict(loss_nc2=dict(type='PreLogitStructureLoss')))

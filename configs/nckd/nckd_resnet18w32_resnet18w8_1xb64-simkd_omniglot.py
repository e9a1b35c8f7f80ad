# NCKD on top of SimKD (Omniglot-242): SimKD's feature MSE plus NC1 + NC2 on
# the pooled SimKDNeck output, which is already in the teacher's 256-d space
# (the input of the reused teacher classifier): no extra projector.
_base_ = ['../simkd/simkd_resnet18w32_resnet18w8_1xb64_omniglot.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDSimKDDistiller', distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

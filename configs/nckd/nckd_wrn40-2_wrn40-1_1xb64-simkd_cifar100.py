# NCKD on top of SimKD (CIFAR-100, wrn40-2 -> wrn40-1): SimKD's feature MSE
# plus NC1 + NC2 on the pooled SimKDNeck output (the teacher's 128-d space).
_base_ = ['../simkd/simkd_wrn40-2_wrn40-1_1xb64_cifar100.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDSimKDDistiller', distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

# NCKD on top of SimKD (CIFAR-100, resnet32x4 -> resnet8x4): SimKD's feature
# MSE plus NC1 + NC2 on the pooled SimKDNeck output (the teacher's 256-d
# space).
_base_ = ['../simkd/simkd_resnet32x4_resnet8x4_1xb64_cifar100.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDSimKDDistiller', distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

# NCKD on top of SimKD (Fashion-MNIST): SimKD's feature MSE plus NC1 + NC2 on
# the pooled SimKDNeck output (the teacher's 256-d space).
_base_ = ['../simkd/simkd_resnet18w32_resnet18w8_1xb128_fashion-mnist.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDSimKDDistiller', distill_losses={{_base_.nckd_plugin_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

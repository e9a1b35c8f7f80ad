# Plug-in form on Fashion-MNIST: the KD config's linear head and KD loss, with
# NC1 + NC2 on a projector to the teacher's width (256) added on top.
_base_ = ['../kd/kd_resnet18w32_resnet18w8_1xb128_fashion-mnist.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    # linear projector to the teacher's width (chosen on validation)
    projector={{_base_.nckd_plugin_kd_projector_64_256}},
    # NC1 + NC2 at 0.3 (chosen on validation), added to the KD loss
    distill_losses={{_base_.nckd_plugin_kd_losses}})
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

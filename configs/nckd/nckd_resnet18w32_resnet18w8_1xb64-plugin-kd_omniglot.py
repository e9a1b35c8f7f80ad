_base_ = ['../kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py',
          '../_base_/models/nckd.py']
model = dict(
    type='NCKDDistiller',
    projector=dict(
        type='Projector', in_channels=64, out_channels=256, mode='mlp',
        sync_bn=True),
    # NC1 and NC2 at 0.3 each: chosen on the validation splits of Omniglot
    # and Fashion-MNIST together (0.3 against 1.0; configs/nckd/README.md)
    # (added to the KD config's loss_kd)
    distill_losses=dict(
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=0.3),
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=0.3)))
val_evaluator = test_evaluator = {{_base_.nckd_evaluator}}

# NCKD on Fashion-MNIST, the default (as on Omniglot): NC1 + NC2 + NC3 head
# from the teacher prototypes + KD in the head's cosine space.
_base_ = ['../kd/kd_r18w32_r18w8_fashionmnist.py']

model = dict(
    type='NCKDDistiller',
    student=dict(
        neck=dict(_delete_=True, type='Projector', in_channels=64,
                  out_channels=256, hidden_channels=256, mode='mlp'),
        head=dict(_delete_=True, type='ETFHead', num_classes=10,
                  in_channels=256, learnable_scale=False)),
    head_weights='teacher',
    kd_target='prototype_cosine',
    distill_losses=dict(
        _delete_=True,
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=1.0),
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=1.0,
                      momentum=0.9, target='teacher'),
        loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=1.0)))

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='TeacherPrototypeHook')]
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='NCMetric')]
test_evaluator = val_evaluator

# NCKD on CIFAR-100: wrn40-2 teacher (128-d) -> wrn16-2 student (128-d).
# NC1 prototype alignment + NC2 ETF-structure transfer + NC3 head (a fixed
# cosine classifier whose weights are the teacher's centred, normalised class
# prototypes; no learned linear layer). The prototypes are computed once before
# training by TeacherPrototypeHook (teacher in eval mode, test pipeline).
# The student's GAP neck becomes a nonlinear projector to the teacher's 128-d
# space: the head needs in_channels = the teacher dim, and the projected
# features must reach rank >= K - 1 = 99, hence an MLP with 256 hidden units
# (>= K = 100; Linear 128x256 + Linear 256x128 = 0.07 M weights, part of the
# exported student, which has no linear head).
# Loss = CE on the NC3 head + 1.0 * NC1 + 1.0 * NC2 (no logit KD).
_base_ = ['../kd/kd_wrn40-2_wrn16-2_cifar100.py']

model = dict(
    type='NCKDDistiller',
    student=dict(
        neck=dict(_delete_=True, type='Projector', in_channels=128,
                  out_channels=128, hidden_channels=256, mode='mlp'),
        head=dict(_delete_=True, type='ETFHead', num_classes=100,
                  in_channels=128, topk=(1, 5))),
    head_weights='teacher',
    # KD in the NC3 head's cosine space (the default, chosen on Omniglot)
    kd_target='prototype_cosine',
    distill_losses=dict(
        _delete_=True,
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=1.0),
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=1.0,
                      momentum=0.9, target='teacher'),
        loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=1.0)))

# the ETF head's log-scale must not be pulled to 0 by weight decay
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='TeacherPrototypeHook')]
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='NCMetric')]
test_evaluator = val_evaluator

# NCKD on Omniglot-242: NC1 prototype alignment + NC2 ETF-structure transfer
# + NC3 head (fixed cosine classifier from the teacher prototypes).
# The student's GAP neck becomes a nonlinear projector to the teacher's
# 256-d space (rank >= K - 1 = 241 needs a hidden width >= K).
# The head scale is fixed at the AdaCos value sqrt(2) ln(K - 1) = 7.76: on
# Omniglot (3 seeds, tools/benchmark/efficacy.py) fixed gave 88.76 +- 0.43
# top-1 against 86.42 +- 0.70 for a learnable scale (which grew to ~54 and
# overfitted); KD gave 88.35 +- 0.22.
_base_ = ['../kd/kd_r18w32_r18w8_omniglot.py']

model = dict(
    student=dict(
        neck=dict(_delete_=True, type='Projector', in_channels=64,
                  out_channels=256, hidden_channels=256, mode='mlp'),
        head=dict(_delete_=True, type='ETFHead', num_classes=242,
                  in_channels=256, learnable_scale=False, topk=(1, 5))),
    head_weights='teacher',
    distill_losses=dict(
        _delete_=True,
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=1.0),
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=1.0,
                      momentum=0.9, target='teacher')))

# the ETF head's log-scale must not be pulled to 0 by weight decay
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='TeacherPrototypeHook')]
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='NCMetric')]
test_evaluator = val_evaluator

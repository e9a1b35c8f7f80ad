# NCKD on ImageNet-1k: ResNet-50 teacher (2048-d, mmpretrain's checkpoint) ->
# MobileNetV2 student (1280-d).
# NC1 prototype alignment + NC2 ETF-structure transfer + NC3 head: the
# student's classifier is a fixed cosine classifier whose weights are the
# teacher's centred, normalised class prototypes (no learned linear layer).
# The prototypes (1000 x 2048) are computed once before training by
# TeacherPrototypeHook: one pass of the teacher (eval mode, test pipeline)
# over the training set, sharded over the GPUs; they are saved in the
# checkpoints, so --resume does not recompute them.
# The student's GAP neck becomes an MLP projector 1280 -> 2048 -> 2048: the
# head needs in_channels = the teacher dim, and the projected features must
# reach rank >= K - 1 = 999, so the hidden width must be >= 1000 (2048 here;
# 6.8 M projector weights, part of the exported student, which has no linear
# head; hidden_channels=1024 is the smallest width that still works).
# Loss = CE on the NC3 head + 1.0 * NC1 + 1.0 * NC2 + 1.0 * KD (T = 4) on the
# teacher's prototype-cosine logits; schedule as
# ../kd/r50_mbv2_imagenet.py (100 epochs, lr 0.1 for a total batch of 256).
#   bash tools/dist_train.sh configs/nckd/r50_mbv2_imagenet.py 8
_base_ = ['../kd/r50_mbv2_imagenet.py']

model = dict(
    type='NCKDDistiller',
    student=dict(
        neck=dict(_delete_=True, type='Projector', in_channels=1280,
                  out_channels=2048, hidden_channels=2048, mode='mlp'),
        head=dict(_delete_=True, type='ETFHead', num_classes=1000,
                  in_channels=2048, topk=(1, 5))),
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

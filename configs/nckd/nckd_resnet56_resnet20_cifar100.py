# NCKD on CIFAR-100: resnet56 teacher (64-d) -> resnet20 student (64-d), in its
# plug-in form on top of KD.
# The teacher's features have 64 dims, fewer than K - 1 = 99: 100 class
# prototypes cannot form a simplex ETF in them, so the NC3 head (ETFHead with
# the teacher prototypes, which needs in_channels >= 99) is impossible, and so
# is ETFStructureLoss's target='etf'. The student keeps its learned linear head
# and KD (0.1 * CE + 0.9 * KD, T = 4, as kd_resnet56_resnet20_cifar100.py); NC1
# prototype alignment and NC2 transfer of the teacher's prototype Gram
# (target='teacher'), weight 1.0 each, act as regularisers on a projection of
# the student's features (64 -> 64, an MLP with 128 hidden units). The
# projector serves the losses only and is not part of the exported student.
_base_ = ['../kd/kd_resnet56_resnet20_cifar100.py']

model = dict(
    type='NCKDDistiller',
    projector=dict(type='Projector', in_channels=64, out_channels=64,
                   hidden_channels=128, mode='mlp'),
    distill_losses=dict(
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=1.0),
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=1.0,
                      momentum=0.9, target='teacher')))
custom_hooks = [dict(type='TeacherPrototypeHook')]
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='NCMetric')]
test_evaluator = val_evaluator

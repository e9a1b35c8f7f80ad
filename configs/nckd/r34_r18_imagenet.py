# NCKD on ImageNet-1k: ResNet-34 teacher (512-d, mmpretrain's checkpoint) ->
# ResNet-18 student (512-d), in its plug-in form on top of KD.
# The teacher's features have 512 dims, fewer than K - 1 = 999: 1000 class
# prototypes cannot form a simplex ETF in them, so the NC3 head (ETFHead with
# the teacher prototypes, in_channels = teacher dim >= 999) is impossible, and
# so is ETFStructureLoss's target='etf'. (Projecting the student to >= 999
# dims would not help: the prototypes it must match are 512-d.) The student
# keeps its learned linear head and KD (0.5 * CE + 0.5 * KD, T = 1, as
# ../kd/r34_r18_imagenet.py); NC1 prototype alignment and NC2 transfer of the
# teacher's prototype Gram (target='teacher'), weight 1.0 each, act as
# regularisers on a linear projection (512 -> 512, Linear + BN) of the
# student's features. The projector serves the losses only and is not part of
# the exported student.
#   bash tools/dist_train.sh configs/nckd/r34_r18_imagenet.py 8
_base_ = ['../kd/r34_r18_imagenet.py']

model = dict(
    type='NCKDDistiller',
    projector=dict(type='Projector', in_channels=512, out_channels=512,
                   mode='linear'),
    distill_losses=dict(
        loss_nc1=dict(type='PrototypeAlignLoss', loss_weight=1.0),
        loss_nc2=dict(type='ETFStructureLoss', loss_weight=1.0,
                      momentum=0.9, target='teacher')))
custom_hooks = [dict(type='TeacherPrototypeHook')]
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='NCMetric')]
test_evaluator = val_evaluator

# Hinton KD on CIFAR-100: resnet32x4 teacher -> shufflev1 student.
# mdistiller's KD defaults (mdistiller/engine/cfg.py): temperature 4, loss =
# 0.1 * CE + 0.9 * KD (the KD term scaled by T^2); 240 epochs, batch 64 (lr
# 0.01 for this student, from its config). Train the teacher first
# (configs/teachers/resnet32x4_1xb64_cifar100.py), then
#   python tools/train.py configs/kd/kd_resnet32x4_shufflev1_1xb64_cifar100.py
_base_ = ['../vanilla/shufflev1_1xb64_cifar100.py']

model = dict(
    _delete_=True,
    type='SingleTeacherDistiller',
    student=dict(
        type='ImageClassifier',
        backbone={{_base_.model.backbone}},
        neck={{_base_.model.neck}},
        head=dict(
            type='LinearClsHead',
            num_classes=100,
            in_channels=960,
            loss=dict(type='CrossEntropyLoss', loss_weight=0.1),
            topk=(1, 5))),
    teacher='configs/teachers/resnet32x4_1xb64_cifar100.py',
    teacher_ckpt='work_dirs/resnet32x4_1xb64_cifar100/epoch_240.pth',
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=0.9)))

# optimise the student (and projector), not the frozen teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

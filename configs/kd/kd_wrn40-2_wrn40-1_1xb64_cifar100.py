# Hinton KD on CIFAR-100: wrn40-2 teacher -> wrn40-1 student.
# mdistiller's KD defaults (mdistiller/engine/cfg.py): temperature 4, loss =
# 0.1 * CE + 0.9 * KD (the KD term scaled by T^2); 240 epochs, batch 64. Train
# the teacher first (configs/teachers/wrn40-2_1xb64_cifar100.py), then
#   python tools/train.py configs/kd/kd_wrn40-2_wrn40-1_1xb64_cifar100.py
_base_ = ['../vanilla/wrn40-1_1xb64_cifar100.py']

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
            in_channels=64,
            loss=dict(type='CrossEntropyLoss', loss_weight=0.1),
            topk=(1, 5))),
    teacher='configs/teachers/wrn40-2_1xb64_cifar100.py',
    teacher_ckpt='work_dirs/wrn40-2_1xb64_cifar100/epoch_240.pth',
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=0.9)))

# optimise the student (and projector), not the frozen teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

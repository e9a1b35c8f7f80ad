# SimKD on CIFAR-100: wrn40-2 teacher -> wrn40-1 student (both 8x8 last
# feature maps). SimKDNeck 64 -> 64 -> 64 -> 128 channels (factor 2), the
# teacher's classifier reused and frozen, MSE to the teacher's last feature
# map as the only loss (the SimKD reference scripts: CE and KL weights 0,
# feature weight 1); 240 epochs, batch 64 (the CRD / mdistiller recipe).
# Train the teacher first (configs/teachers/wrn40-2_1xb64_cifar100.py).
_base_ = ['../vanilla/wrn40-1_1xb64_cifar100.py']

model = dict(
    _delete_=True,
    type='SimKDDistiller',
    student=dict(
        type='ImageClassifier',
        backbone={{_base_.model.backbone}},
        neck=dict(type='SimKDNeck', in_channels=64, out_channels=128),
        head=dict(
            type='FrozenLinearClsHead',
            num_classes=100,
            in_channels=128,
            loss=dict(type='CrossEntropyLoss', loss_weight=0.0),
            topk=(1, 5))),
    teacher='configs/teachers/wrn40-2_1xb64_cifar100.py',
    teacher_ckpt='work_dirs/wrn40-2_1xb64_cifar100/epoch_240.pth',
    distill_losses=dict(loss_simkd=dict(type='SimKDLoss', loss_weight=1.0)))

# optimise the student's backbone and projector; the reused teacher
# classifier is frozen and left out, as is the teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

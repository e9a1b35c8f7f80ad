# SimKD on CIFAR-100: resnet32x4 teacher -> resnet8x4 student (both 8x8 last
# feature maps). SimKDNeck 256 -> 128 -> 128 -> 256 channels (factor 2), the
# teacher's classifier reused and frozen, MSE to the teacher's last feature
# map as the only loss (the SimKD reference scripts: CE and KL weights 0,
# feature weight 1); 240 epochs, batch 64 (the CRD / mdistiller recipe).
# Train the teacher first (configs/teachers/resnet32x4_1xb64_cifar100.py).
_base_ = ['../vanilla/resnet8x4_1xb64_cifar100.py']

model = dict(
    _delete_=True,
    type='SimKDDistiller',
    student=dict(
        type='ImageClassifier',
        backbone={{_base_.model.backbone}},
        neck=dict(type='SimKDNeck', in_channels=256, out_channels=256),
        head=dict(
            type='FrozenLinearClsHead',
            num_classes=100,
            in_channels=256,
            loss=dict(type='CrossEntropyLoss', loss_weight=0.0),
            topk=(1, 5))),
    teacher='configs/teachers/resnet32x4_1xb64_cifar100.py',
    teacher_ckpt='work_dirs/resnet32x4_1xb64_cifar100/epoch_240.pth',
    distill_losses=dict(loss_simkd=dict(type='SimKDLoss', loss_weight=1.0)))

# optimise the student's backbone and projector; the reused teacher
# classifier is frozen and left out, as is the teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

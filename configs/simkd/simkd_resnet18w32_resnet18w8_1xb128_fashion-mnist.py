# SimKD on Fashion-MNIST: ResNet-18/32 teacher -> ResNet-18/8 student.
# SimKDNeck 64 -> 128 -> 128 -> 256 channels on the student's last feature
# map, the teacher's classifier reused and frozen, MSE to the teacher's last
# feature map as the only loss (CE loss_weight 0).
_base_ = ['../vanilla/resnet18w8_1xb128_fashion-mnist.py']

model = dict(
    _delete_=True,
    type='SimKDDistiller',
    student=dict(
        type='ImageClassifier',
        backbone={{_base_.model.backbone}},
        neck=dict(type='SimKDNeck', in_channels=64, out_channels=256),
        head=dict(
            type='FrozenLinearClsHead',
            num_classes=10,
            in_channels=256,
            loss=dict(type='CrossEntropyLoss', loss_weight=0.0),
            topk=(1, 5))),
    teacher='configs/teachers/resnet18w32_1xb128_fashion-mnist.py',
    teacher_ckpt='work_dirs/resnet18w32_1xb128_fashion-mnist/epoch_60.pth',
    distill_losses=dict(loss_simkd=dict(type='SimKDLoss', loss_weight=1.0)))

# optimise the student's backbone and projector; the reused teacher
# classifier is frozen and left out, as is the teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

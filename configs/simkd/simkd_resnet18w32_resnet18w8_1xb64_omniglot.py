# SimKD on Omniglot-242: ResNet-18/32 teacher -> ResNet-18/8 student.
# The student keeps its backbone; a SimKDNeck (1x1 -> 3x3 -> 1x1 convs with
# BN + ReLU, 64 -> 128 -> 128 -> 256 channels) maps its last 2x2 feature map
# to the teacher's 256 channels, and the teacher's classifier, copied in and
# frozen (FrozenLinearClsHead), classifies its pooled output. The only loss
# is the MSE to the teacher's last feature map (SimKD trains without CE:
# loss_weight 0). Exported student: backbone + 189,440-parameter projector +
# 62,194-parameter reused head.
_base_ = ['../vanilla/resnet18w8_1xb64_omniglot.py']

model = dict(
    _delete_=True,
    type='SimKDDistiller',
    student=dict(
        type='ImageClassifier',
        backbone={{_base_.model.backbone}},
        neck=dict(type='SimKDNeck', in_channels=64, out_channels=256),
        head=dict(
            type='FrozenLinearClsHead',
            num_classes=242,
            in_channels=256,
            loss=dict(type='CrossEntropyLoss', loss_weight=0.0),
            topk=(1, 5))),
    teacher='configs/teachers/resnet18w32_1xb64_omniglot.py',
    teacher_ckpt='work_dirs/resnet18w32_1xb64_omniglot/epoch_30.pth',
    distill_losses=dict(loss_simkd=dict(type='SimKDLoss', loss_weight=1.0)))

# optimise the student's backbone and projector; the reused teacher
# classifier is frozen and left out, as is the teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

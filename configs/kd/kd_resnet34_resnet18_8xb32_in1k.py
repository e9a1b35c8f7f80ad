# Hinton KD on ImageNet-1k: ResNet-34 teacher (mmpretrain's published
# checkpoint, 73.62% top-1) -> ResNet-18 student.
# mdistiller's ImageNet KD (configs/imagenet/r34_r18/kd.yaml): temperature 1,
# loss = 0.5 * CE + 0.5 * KD; 100 epochs, SGD lr 0.1 for a total batch of 256
# (mdistiller: 0.2 for 512), weight decay 1e-4, x0.1 at epochs 30/60/90.
#   bash tools/dist_train.sh configs/kd/kd_resnet34_resnet18_8xb32_in1k.py 8
# The teacher checkpoint is downloaded from download.openmmlab.com when
# training starts (it is not loaded when the model is built for testing).
_base_ = [
    '../_base_/datasets/imagenet_bs32_kd.py',
    '../_base_/schedules/imagenet_kd_100e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='SingleTeacherDistiller',
    # mmpretrain's ResNet-18 (configs/_base_/models/resnet18.py)
    student=dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet',
            depth=18,
            num_stages=4,
            out_indices=(3, ),
            style='pytorch'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=1000,
            in_channels=512,
            loss=dict(type='CrossEntropyLoss', loss_weight=0.5),
            topk=(1, 5))),
    # mmpretrain's ResNet-34 (configs/resnet/resnet34_8xb32_in1k.py), 512-d
    teacher=dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet',
            depth=34,
            num_stages=4,
            out_indices=(3, ),
            style='pytorch'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=1000,
            in_channels=512,
            topk=(1, 5))),
    teacher_ckpt='https://download.openmmlab.com/mmclassification/v0/resnet/'
    'resnet34_8xb32_in1k_20210831-f257d4e6.pth',
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=1.0, loss_weight=0.5)))

# optimise the student (and projector), not the frozen teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

# Hinton KD on Fashion-MNIST: ResNet-18/32 teacher -> ResNet-18/8 student.
_base_ = ['../vanilla/resnet18w8_1xb128_fashion-mnist.py']

model = dict(
    _delete_=True,
    type='SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='configs/teachers/resnet18w32_1xb128_fashion-mnist.py',
    teacher_ckpt='work_dirs/resnet18w32_1xb128_fashion-mnist/epoch_60.pth',
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=1.0)))

# optimise the student (and projector), not the frozen teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

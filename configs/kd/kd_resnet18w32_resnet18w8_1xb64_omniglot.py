# Hinton KD on Omniglot-242: ResNet-18/32 teacher -> ResNet-18/8 student.
# The pattern of any mmnckd distillation config: inherit the student's own
# mmpretrain config and wrap its model.
_base_ = ['../vanilla/resnet18w8_1xb64_omniglot.py']

model = dict(
    _delete_=True,
    type='SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='configs/teachers/resnet18w32_1xb64_omniglot.py',
    teacher_ckpt='work_dirs/resnet18w32_1xb64_omniglot/epoch_30.pth',
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=1.0)))

# optimise the student (and projector), not the frozen teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

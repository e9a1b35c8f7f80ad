# CRD on CIFAR-100: wrn40-2 teacher -> wrn40-1 student.
# The CRD recipe (RepDistiller / mdistiller's CRD config): CE 1.0 + 0.8 * CRD,
# 128-d embeddings, K = 16,384 negatives, NCE temperature 0.07, memory
# momentum 0.5, one memory row per training image (50,000); 240 epochs,
# batch 64. Train the teacher first
# (configs/teachers/wrn40-2_1xb64_cifar100.py), then
#   python tools/train.py configs/crd/crd_wrn40-2_wrn40-1_1xb64_cifar100.py
_base_ = ['../vanilla/wrn40-1_1xb64_cifar100.py']

model = dict(
    _delete_=True,
    type='SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='configs/teachers/wrn40-2_1xb64_cifar100.py',
    teacher_ckpt='work_dirs/wrn40-2_1xb64_cifar100/epoch_240.pth',
    distill_losses=dict(
        loss_crd=dict(type='CRDLoss', num_samples=50000, loss_weight=0.8)))

# optimise the student and the CRD embeddings, not the frozen teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

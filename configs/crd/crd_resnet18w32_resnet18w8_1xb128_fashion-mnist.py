# CRD on Fashion-MNIST: ResNet-18/32 teacher -> ResNet-18/8 student.
# CE 1.0 + 0.8 * CRD (the CRD recipe). The memory holds one row per training
# sample: num_samples = 10,000 (num_per_class=1000 in the dataset config);
# with the benchmark's val split (num_val_per_class=100) set it to 9,000.
# K = 1,024 negatives (drawn with replacement), as on Omniglot: chosen for
# cost, not tuned for accuracy.
_base_ = ['../vanilla/resnet18w8_1xb128_fashion-mnist.py']

model = dict(
    _delete_=True,
    type='SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='configs/teachers/resnet18w32_1xb128_fashion-mnist.py',
    teacher_ckpt='work_dirs/resnet18w32_1xb128_fashion-mnist/epoch_60.pth',
    distill_losses=dict(
        loss_crd=dict(
            type='CRDLoss',
            num_samples=10000,
            num_negatives=1024,
            loss_weight=0.8)))

# optimise the student and the CRD embeddings, not the frozen teacher
optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor')

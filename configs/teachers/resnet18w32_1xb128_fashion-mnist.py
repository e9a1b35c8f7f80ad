# Teacher on Fashion-MNIST: the Omniglot teacher architecture with 10 classes.
_base_ = [
    '../_base_/models/omniglot_resnet18_w32.py',
    '../_base_/datasets/fashion_mnist_bs128.py',
    '../_base_/schedules/small_sgd_cosine.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=10, topk=(1, )))
# lr 0.1 for batch 128 (linear scaling of the base schedule's 0.05 @ 64)
optim_wrapper = dict(optimizer=dict(lr=0.1))
auto_scale_lr = dict(base_batch_size=128)
# 60 epochs on the 1,000-per-class subset: into the terminal phase (train
# top-1 ~100%); 15 epochs left it at 92% train top-1.
param_scheduler = dict(T_max=60)
train_cfg = dict(max_epochs=60, val_interval=10)

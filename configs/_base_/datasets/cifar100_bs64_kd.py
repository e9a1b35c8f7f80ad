# CIFAR-100 for the knowledge-distillation benchmark (CRD / mdistiller recipe):
# random crop 32 with 4-pixel zero padding + horizontal flip for training, the
# plain 32x32 image for testing, batch 64 on one GPU. mmpretrain's CIFAR100
# dataset reads the python pickles under data_root and downloads them there
# if they are missing (download=True is its default; needs internet).
# mmpretrain's stock cifar100_bs16.py with batch 64 and top-5 accuracy.
_base_ = 'mmpretrain::_base_/datasets/cifar100_bs16.py'

dataset_type = 'CIFAR100'
data_root = 'data/cifar100'

data_preprocessor = dict(
    num_classes=100,
    # RGB mean / std (0..255 scale) of the CIFAR-100 train split
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    # the dataset yields RGB images already
    to_rgb=False)

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='train'))

val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='test'))
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator

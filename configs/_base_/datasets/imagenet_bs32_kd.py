# ImageNet-1k for the knowledge-distillation benchmark: mmpretrain's stock
# ImageNet pipeline (train: RandomResizedCrop 224 + horizontal flip; test:
# resize the short edge to 256, centre crop 224), batch 32 per GPU, i.e. a
# total batch of 256 on 8 GPUs. Expects mmpretrain's ImageNet layout under
# data/imagenet (train/ and val/ class folders, or meta/train.txt and
# meta/val.txt annotation files); see mmpretrain's dataset docs.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'

train_dataloader = dict(batch_size=32, num_workers=8)
val_dataloader = dict(batch_size=64, num_workers=8)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

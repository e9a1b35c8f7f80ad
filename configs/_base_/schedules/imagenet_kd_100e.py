# The ImageNet KD schedule of mdistiller / mmpretrain's ResNet recipe: 100
# epochs of SGD (momentum 0.9, weight decay 1e-4), lr 0.1 for a total batch of
# 256 (8 GPUs x 32; mdistiller's lr 0.2 for batch 512 is the same linear
# rule), divided by 10 at epochs 30, 60 and 90.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr 0.1 was set for a total batch of 256; --auto-scale-lr rescales
auto_scale_lr = dict(base_batch_size=256)

# The CIFAR-100 KD schedule of CRD and mdistiller: 240 epochs of SGD
# (momentum 0.9, weight decay 5e-4), lr 0.05 divided by 10 at epochs 150, 180
# and 210. ShuffleNet / MobileNet students (and their teachers-alone runs)
# override lr to 0.01, as CRD and mdistiller do.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr 0.05 was set for a total batch of 64 (one GPU); --auto-scale-lr rescales
auto_scale_lr = dict(base_batch_size=64)

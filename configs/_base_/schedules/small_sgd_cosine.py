# SGD + cosine annealing for the small embedded data sets (CPU-sized).
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = dict(
    type='CosineAnnealingLR',
    by_epoch=True,
    T_max=30,
    eta_min=0.0,
    convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
# lr 0.05 was set for a total batch of 64
auto_scale_lr = dict(base_batch_size=64)

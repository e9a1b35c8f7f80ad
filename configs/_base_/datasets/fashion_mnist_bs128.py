# Fashion-MNIST (10 classes, 28x28 grayscale) read from the local gzipped IDX
# files, see mmnckd.datasets.FashionMNISTIDX (Debian: dataset-fashion-mnist).
dataset_type = 'FashionMNISTIDX'
data_root = '/usr/share/datasets/fashion-mnist'

data_preprocessor = dict(
    num_classes=10,
    # Single-channel mean/std (0..255 scale) of the train split.
    mean=[72.940],
    std=[90.021],
    # Images are single-channel already.
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        # 1,000 training images per class (10k of the 60k), so that a
        # benchmark table fits a CPU; the whole 10k test split
        num_per_class=1000,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
    # All images have the same size: stack them into one (B, 1, 28, 28).
    collate_fn=dict(type='default_collate'),
)

val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Omniglot "background small" (242 characters, see mmnckd.datasets.Omniglot):
# drawers 1..15 of each character for training, 16..20 for testing, 28x28
# grayscale with bright strokes.
dataset_type = 'Omniglot'
# Relative to the repository root, from where the tools are run (the zips
# are tracked in the repository, see data/omniglot/README.md).
data_root = 'data/omniglot'

data_preprocessor = dict(
    num_classes=242,
    # Single-channel mean/std (0..255 scale) of the 28x28 train split.
    mean=[20.507],
    std=[60.129],
    # Images are single-channel already.
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
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

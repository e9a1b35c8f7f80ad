"""The train-set pass config: every training sample once, test pipeline."""
from mmnckd.utils import innermost_dataset, train_pass_loader_cfg

TEST = [dict(type='PackInputs')]
TRAIN = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='PackInputs')
]


def omniglot(**kwargs):
    return dict(
        type='Omniglot',
        data_root='data/omniglot',
        split='train',
        pipeline=TRAIN,
        **kwargs)


def loader(dataset, **kwargs):
    return dict(
        batch_size=13,
        dataset=dataset,
        drop_last=True,
        sampler=dict(type='DefaultSampler', shuffle=True),
        **kwargs)


def test_no_shuffle_padding_or_dropped_batch():
    cfg = train_pass_loader_cfg(loader(omniglot()), TEST)
    assert cfg['sampler'] == dict(
        type='DefaultSampler', shuffle=False, round_up=False)
    assert cfg['drop_last'] is False
    assert cfg['dataset']['pipeline'] == TEST
    assert cfg['batch_size'] == 13


def test_repeating_and_reweighting_wrappers_are_removed():
    wrapped = dict(
        type='RepeatDataset',
        times=3,
        dataset=dict(
            type='ClassBalancedDataset',
            oversample_thr=0.5,
            dataset=omniglot()))
    original = loader(wrapped, batch_sampler=dict(type='x'))
    cfg = train_pass_loader_cfg(original, TEST)
    assert cfg['dataset'] == dict(omniglot(), pipeline=TEST)
    assert 'batch_sampler' not in cfg
    # the training config itself is untouched
    assert innermost_dataset(original['dataset'])['pipeline'] == TRAIN
    assert original['drop_last'] is True


def test_every_part_of_a_concat_dataset_gets_the_pipeline():
    concat = dict(
        type='ConcatDataset',
        datasets=[
            omniglot(train_drawers=10),
            dict(type='RepeatDataset', times=2, dataset=omniglot())
        ])
    cfg = train_pass_loader_cfg(loader(concat), TEST)
    assert cfg['dataset']['type'] == 'ConcatDataset'
    assert cfg['dataset']['datasets'] == [
        dict(omniglot(train_drawers=10), pipeline=TEST),
        dict(omniglot(), pipeline=TEST)
    ]


def test_concat_training_set_is_read_once_with_a_partial_last_batch():
    """Built and iterated: 3,630 + 2,420 Omniglot samples in batches of 13
    (the last one partial, 6,050 = 465 * 13 + 5), each exactly once."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    import mmnckd  # noqa: F401
    concat = dict(
        type='ConcatDataset',
        datasets=[omniglot(), omniglot(train_drawers=10)])
    cfg = train_pass_loader_cfg(
        loader(concat, num_workers=0, collate_fn=dict(type='default_collate')),
        TEST)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataloader = Runner.build_dataloader(cfg)
    sizes = [len(batch['data_samples']) for batch in dataloader]
    assert sum(sizes) == 3630 + 2420 == len(dataloader.dataset)
    assert sizes[-1] == 6050 % 13 == 5

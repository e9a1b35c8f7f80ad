"""One pass over the *training* set with the test pipeline.

The teacher prototypes and the NC analysis of the train split both need the
training samples without random augmentation, each exactly once: the train
dataloader config with the dataset's pipeline replaced (through
``ConcatDataset`` parts; repeating or re-weighting wrappers removed), a sampler
that neither shuffles nor pads (``round_up=False``) and ``drop_last=False``,
so a sharded pass sees every sample exactly once across ranks.
"""
import copy


def innermost_dataset(dataset_cfg):
    """The dataset config that owns the pipeline (through wrappers)."""
    while 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _each_sample_once(dataset_cfg, pipeline) -> dict:
    """``dataset_cfg`` reading each sample once with ``pipeline``: wrappers
    that repeat or re-weight samples (``RepeatDataset``,
    ``ClassBalancedDataset``, ...) are replaced by the dataset they wrap,
    and every part of a ``ConcatDataset`` gets ``pipeline``."""
    if 'datasets' in dataset_cfg:  # ConcatDataset: keep it, fix each part
        cfg = copy.deepcopy(dataset_cfg)
        cfg['datasets'] = [
            _each_sample_once(d, pipeline) for d in dataset_cfg['datasets']
        ]
        return cfg
    if 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:
        return _each_sample_once(dataset_cfg['dataset'], pipeline)
    cfg = copy.deepcopy(dataset_cfg)
    cfg['pipeline'] = copy.deepcopy(pipeline)
    return cfg


def train_pass_loader_cfg(train_loader_cfg, pipeline) -> dict:
    """A copy of ``train_loader_cfg`` that reads every sample once with
    ``pipeline``: no shuffling, no padding, no dropped last batch, and no
    dataset wrapper that repeats or re-weights samples."""
    loader = copy.deepcopy(train_loader_cfg)
    loader['dataset'] = _each_sample_once(loader['dataset'], pipeline)
    loader['sampler'] = dict(
        type='DefaultSampler', shuffle=False, round_up=False)
    loader.pop('batch_sampler', None)
    loader['drop_last'] = False
    return loader

"""One pass over the *training* set with the test pipeline.

The teacher prototypes and the NC analysis of the train split both need the
training samples without random augmentation, each exactly once: the train
dataloader config with the (innermost) dataset's pipeline replaced and a
sampler that neither shuffles nor pads (``round_up=False``), so a sharded
pass sees every sample once across ranks.
"""
import copy


def innermost_dataset(dataset_cfg):
    """The dataset config that owns the pipeline (through wrappers)."""
    while 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def train_pass_loader_cfg(train_loader_cfg, pipeline) -> dict:
    """A copy of ``train_loader_cfg`` that reads every sample once with
    ``pipeline``."""
    loader = copy.deepcopy(train_loader_cfg)
    innermost_dataset(loader['dataset'])['pipeline'] = copy.deepcopy(pipeline)
    loader['sampler'] = dict(
        type='DefaultSampler', shuffle=False, round_up=False)
    loader.pop('batch_sampler', None)
    return loader

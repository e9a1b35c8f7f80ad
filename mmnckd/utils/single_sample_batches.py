"""Batches of one sample in front of BatchNorm, found before training.

A BatchNorm layer in training mode normalises with the batch statistics, so
a ``(1, C)`` input has nothing to normalise with and PyTorch fails with
"Expected more than 1 value per channel when training" -- after whatever ran
before the first such batch (the teacher prototype pass, a whole epoch). A
training batch of 1 sample happens when

* ``train_dataloader.batch_size == 1``, or
* ``drop_last=False`` (the default) and a rank's share of the dataset leaves
  a last batch of exactly 1 sample: ``n_r % batch_size == 1`` with ``n_r``
  the samples of rank ``r`` per epoch. For mmengine's ``DefaultSampler``
  over ``N`` samples and ``W`` ranks, ``n_r = ceil(N / W)`` on every rank
  with ``round_up=True`` (the default: the sampler pads by repeating
  samples) and ``n_r = ceil((N - r) / W)`` with ``round_up=False``.

:func:`check_batch_norm_batches` raises a ``ValueError`` naming the batch
size, the rank and the layers, and saying the fix, when the model's
projector (``model.projector``, or the student's neck ``model.student.neck``)
has a BatchNorm layer and the train dataloader gives such a batch.
"""
import math
from typing import List, Optional

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: How to avoid batches of 1 sample (also in the Projector's own error).
SINGLE_SAMPLE_FIX = (
    'Set train_dataloader.batch_size >= 2; with drop_last=False (the '
    'default) the last batch of an epoch holds the remainder of the '
    'samples of each rank, and a remainder of 1 sample fails too: set '
    'train_dataloader.drop_last=True, or a batch size that does not leave '
    '1 sample.')


def batch_norm_layers(module: Optional[nn.Module]) -> List[str]:
    """The names of the BatchNorm layers of ``module`` that need more than
    one sample per batch in training mode (``SyncBatchNorm`` is left out: it
    pools the batch over the ranks)."""
    if not isinstance(module, nn.Module):
        return []
    return [
        f'{name or "."}: {type(m).__name__}'
        for name, m in module.named_modules()
        if isinstance(m, _BatchNorm) and not isinstance(m, nn.SyncBatchNorm)
    ]


def samples_per_rank(sampler, dataset_len: int) -> Optional[List[int]]:
    """The samples each rank draws per epoch (``None``: unknown, or an
    endless sampler whose batches are all full)."""
    from mmengine.dataset import DefaultSampler, InfiniteSampler
    if isinstance(sampler, DefaultSampler):
        world = sampler.world_size
        if sampler.round_up:
            return [math.ceil(dataset_len / world)] * world
        return [math.ceil((dataset_len - r) / world) for r in range(world)]
    if isinstance(sampler, InfiniteSampler):
        return None
    try:
        return [len(sampler)]  # this rank's
    except TypeError:
        return None


def single_sample_batch(dataloader) -> Optional[str]:
    """Why ``dataloader`` gives a batch of 1 sample, or ``None``."""
    batch_size = getattr(dataloader, 'batch_size', None)
    if batch_size is None:  # a batch_sampler decides; cannot tell
        return None
    if batch_size == 1:
        return 'train_dataloader.batch_size=1'
    if getattr(dataloader, 'drop_last', False):
        return None
    dataset = getattr(dataloader, 'dataset', None)
    sampler = getattr(dataloader, 'sampler', None)
    if dataset is None or sampler is None:
        return None
    counts = samples_per_rank(sampler, len(dataset))
    for rank, n in enumerate(counts or []):
        if n % batch_size == 1:
            where = f' on rank {rank}' if len(counts) > 1 else ''
            return (f'train_dataloader.batch_size={batch_size} with '
                    f'drop_last=False: the {n} samples per epoch{where} '
                    f'({len(dataset)} in the dataset) leave a last batch of '
                    f'{n} % {batch_size} = 1 sample')
    return None


def check_batch_norm_batches(model: nn.Module, dataloader) -> None:
    """Raise if a BatchNorm projector of ``model`` would get a training
    batch of 1 sample from ``dataloader`` (see the module doc).

    Raises:
        ValueError: naming the batch size (and the rank and sample counts
            of a last batch of 1), the BatchNorm layers and the fix.
    """
    layers = []
    for where in ('projector', 'student.neck'):
        module = model
        for attr in where.split('.'):
            module = getattr(module, attr, None)
        names = batch_norm_layers(module)
        if names:
            layers.append(f'model.{where} ({", ".join(names)})')
    if not layers:
        return
    why = single_sample_batch(dataloader)
    if why is None:
        return
    raise ValueError(
        f'Training would reach a batch of 1 sample ({why}), but BatchNorm '
        f'cannot train on 1 sample per channel ("Expected more than 1 value '
        f'per channel when training") and the model has BatchNorm in '
        f'{", ".join(layers)}. {SINGLE_SAMPLE_FIX}')

"""Neural Collapse metrics as an mmengine/mmpretrain evaluator metric."""
import warnings
from typing import Any, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..functional.nc_metrics import NCAccumulator


def _get(sample: Any, key: str):
    """Read ``key`` from a predicted sample (a dict or a data element)."""
    if isinstance(sample, dict):
        return sample.get(key)
    return getattr(sample, key, None)


@METRICS.register_module()
class NCMetric(BaseMetric):
    """NC1 / NC2 / NC2-equinorm / NC3 of the features seen at val/test time.

    Each prediction (mmengine hands them over as ``DataSample.to_dict()``)
    must carry the feature under ``feat_key`` (a 1-D tensor, by default the
    head's pre-logits) and the ``gt_label``. If a prediction carries a
    classifier weight under ``weight_key`` (``K x d``), the last one seen is
    used for ``nc3``. Definitions:
    :mod:`mmnckd.evaluation.functional.nc_metrics`.

    The metric is streaming: features are never stored. Each process keeps a
    single state dict in ``self.results`` (the float64 sufficient statistics
    of an :class:`NCAccumulator`, updated in place), so mmengine's
    ``collect_results`` gathers one entry per rank and ``compute_metrics``
    merges them.

    Device: as mmengine's and mmpretrain's metrics do, ``process()`` moves
    what it keeps to the CPU: the features (so the running sums are
    accumulated on the CPU), the held-back sample and the classifier weight
    are detached CPU tensors that own their memory. Rank 0 therefore never
    unpickles another rank's ``cuda:k`` tensors in ``collect_results``, and
    the state holds no autograd graph nor a view of the model's buffers.

    Padding: in distributed evaluation the sampler pads the dataset so that
    every rank gets the same number of samples, and mmengine drops the
    padding by truncating the interleaved per-sample results to ``size``.
    To do the same without storing features, each rank keeps its *last*
    sample out of the statistics (raw, one feature per rank); at the end it
    is added only if its position in mmengine's interleaved order is below
    ``size``. This is exact whenever padding only affects the last sample of
    each rank, which is the case for mmengine's ``DefaultSampler``.

    Args:
        feat_key (str): Key of the feature in each prediction.
            Defaults to ``'pre_logits'``.
        weight_key (str): Key of the optional classifier weight.
            Defaults to ``'cls_weight'``.
        num_classes (int, optional): Number of classes; None infers it from
            the labels. Metrics always average over the classes present.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Metric name prefix. Defaults to ``'nc'``.
        collect_dir (str, optional): Directory for cpu collection.
    """

    default_prefix: Optional[str] = 'nc'

    def __init__(self,
                 feat_key: str = 'pre_logits',
                 weight_key: str = 'cls_weight',
                 num_classes: Optional[int] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.feat_key = feat_key
        self.weight_key = weight_key
        self.num_classes = num_classes
        self._acc: Optional[NCAccumulator] = None
        self._size: Optional[int] = None

    def _missing_feature(self) -> KeyError:
        return KeyError(
            f'NCMetric found no {self.feat_key!r} (feat_key) in the model '
            f'predictions. The model must attach the feature to each '
            f"predicted data sample (e.g. data_sample.set_field(feat, "
            f"'{self.feat_key}')); the NCKD distiller does this, a plain "
            f'mmpretrain classifier does not (see the mmnckd docs on '
            f'evaluating Neural Collapse), or set feat_key to the key your '
            f'model uses.')

    def _state(self) -> dict:
        if not self.results:  # fresh start, or cleared by evaluate()
            self._acc = NCAccumulator(num_classes=self.num_classes)
            self.results.append(
                dict(
                    acc=self._acc.state_dict(),
                    count=0,
                    last_feat=None,
                    last_label=None,
                    weight=None))
        return self.results[0]

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Add a batch of predictions to this process's statistics."""
        state = self._state()
        feats, labels = [], []
        weight = None
        for sample in data_samples:
            feat = _get(sample, self.feat_key)
            if feat is None:
                raise self._missing_feature()
            gt = _get(sample, 'gt_label')
            if gt is None:
                raise KeyError('NCMetric needs the ground truth `gt_label` in '
                               'each prediction.')
            feats.append(torch.as_tensor(feat).detach().reshape(-1))
            labels.append(int(torch.as_tensor(gt).reshape(-1)[0]))
            w = _get(sample, self.weight_key)
            if w is not None:
                weight = w
        if not feats:
            return
        if weight is not None:  # a copy on the CPU, not a view of the head
            state['weight'] = torch.as_tensor(weight).detach().to(
                'cpu', copy=True)

        # one device-to-host copy per batch; the stack owns its memory
        feats = torch.stack(feats).cpu()
        labels = torch.tensor(labels, dtype=torch.long)
        if state['last_feat'] is not None:  # release the held-back sample
            prev = state['last_feat'].to(feats.device, feats.dtype)
            feats = torch.cat([prev[None], feats])
            labels = torch.cat([torch.tensor([state['last_label']]), labels])
        self._acc.update(feats[:-1], labels[:-1])
        state['last_feat'] = feats[-1].clone()  # not a view of the batch
        state['last_label'] = int(labels[-1])
        state['count'] += len(data_samples)
        state['acc'] = self._acc.state_dict()

    def evaluate(self, size: int) -> dict:
        self._size = size
        try:
            return super().evaluate(size)
        finally:
            self._size = None
            self._acc = None

    def compute_metrics(self, results: List[dict]) -> dict:
        """Merge the per-process states and compute the metrics."""
        if not results or all(r['count'] == 0 for r in results):
            raise self._missing_feature()
        acc = NCAccumulator(num_classes=self.num_classes)
        for r in results:
            acc.merge(NCAccumulator.from_state(r['acc']))

        counts = [r['count'] for r in results]
        size = self._size
        dropped = 0
        for rank, r in enumerate(results):
            if r['last_feat'] is None:
                continue
            j = counts[rank] - 1
            # position of (rank, j) in mmengine's zip_longest interleaving
            pos = sum(min(c, j)
                      for c in counts) + sum(1 for c in counts[:rank] if c > j)
            if size is None or pos < size:
                acc.update(r['last_feat'][None],
                           torch.tensor([r['last_label']]))
            else:
                dropped += 1
        if size is not None and sum(counts) - size > dropped:
            warnings.warn(
                f'NCMetric: {sum(counts) - size} padded samples but only '
                f'{dropped} could be removed without stored features; the '
                'metrics include a few duplicated samples.')

        weight = next(
            (r['weight'] for r in results if r['weight'] is not None), None)
        return acc.compute(weight=weight)

"""TeacherPrototypeHook: the teacher's class means, once, before training.

``mu_k = (1/n_k) sum_{i: y_i = k} f_t(x_i)`` over the *training* set with the
frozen teacher (eval mode) and the *test* pipeline (no random augmentation).
The set is sharded over ranks (no padding, no repeats); per-class sums and
counts are all-reduced, so every rank holds identical prototypes. They are
stored in the distiller's buffers (``NCKDDistiller.set_prototypes``), hence
saved in checkpoints: a resumed run finds them and does not recompute. With
them go the SHA-256 of the teacher's weights and of the ordered class names:
restored prototypes of another teacher or class list are refused (or
recomputed with ``on_stale='recompute'``), restored NaN/Inf values too.
Before anything, a teacher checkpoint that records its classes is checked
against the training set's, by name and order. Optionally saved to / loaded
from a file.
"""
import os.path as osp
from typing import Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from mmpretrain.registry import HOOKS

from ...utils.loaders import innermost_dataset, train_pass_loader_cfg
from ...utils.safe_load import safe_torch_load
from ...utils.single_sample_batches import check_batch_norm_batches
from ...utils.state_check import names_sha256
from ..fileio import atomic_torch_save


@HOOKS.register_module()
class TeacherPrototypeHook(Hook):
    """Compute (or load) the teacher prototypes before the first iteration.

    First it checks that training will not reach a batch of 1 sample with a
    BatchNorm projector (``ValueError``, see
    :func:`mmnckd.utils.single_sample_batches.check_batch_norm_batches`).

    Args:
        batch_size (int, optional): Batch size of the prototype pass.
            Defaults to the train dataloader's.
        num_workers (int, optional): Defaults to the train dataloader's.
        pipeline (list, optional): Defaults to the test dataloader's
            pipeline (else the val dataloader's).
        load_from (str, optional): A prototype file written by this hook
            (``save_to``); skips the teacher pass.
        save_to (str, optional): Where to save the prototypes, relative to
            the work dir. Defaults to ``teacher_prototypes.pth``; None: no
            file. The file records the teacher's weight digest and the class
            names, checked when it is loaded.
        on_stale (str): Prototypes restored by ``--resume``/``load_from``
            that were computed for another teacher (SHA-256 of its weights)
            or another class list (names and order): ``'error'`` (default)
            stops with an error, ``'recompute'`` recomputes them.
        progress (bool): Show a progress bar on rank 0.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None,
                 pipeline: Optional[list] = None,
                 load_from: Optional[str] = None,
                 save_to: Optional[str] = 'teacher_prototypes.pth',
                 on_stale: str = 'error',
                 progress: bool = True):
        if on_stale not in ('error', 'recompute'):
            raise ValueError(f'TeacherPrototypeHook.on_stale must be "error" '
                             f'or "recompute", got {on_stale!r}.')
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pipeline = pipeline
        self.load_from = load_from
        self.save_to = save_to
        self.on_stale = on_stale
        self.progress = progress

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if not hasattr(model, 'set_prototypes'):
            raise TypeError(
                f'TeacherPrototypeHook needs an NCKDDistiller model, got '
                f'{type(model).__name__}: remove the hook from custom_hooks.')
        # before the long pass: a BatchNorm projector and a batch of 1
        check_batch_norm_batches(model, runner.train_dataloader)
        classes = self._classes(runner)
        model.check_teacher_classes(classes)
        provenance = (model.teacher_weights_sha256(),
                      names_sha256(classes) if classes else None)
        if bool(model.prototypes_ready) and self._restored_ok(
                runner, model, provenance):
            return
        if self.load_from is not None:
            class_means = self.load(self.load_from, model, provenance)
            runner.logger.info(f'Teacher prototypes loaded from '
                               f'{self.load_from}.')
        else:
            class_means, counts = self.compute(runner, model)
            if self.save_to is not None and is_main_process():
                path = osp.join(runner.work_dir, self.save_to)
                atomic_torch_save(
                    dict(
                        class_means=class_means.cpu(),
                        counts=counts.cpu(),
                        classes=list(classes or []),
                        teacher_ckpt=str(model.teacher_ckpt),
                        teacher_sha256=provenance[0],
                        classes_sha256=provenance[1]), path)
                runner.logger.info(f'Teacher prototypes saved to {path}.')
        model.set_prototypes(class_means, *provenance)

    def _restored_ok(self, runner, model, provenance) -> bool:
        """Whether prototypes restored by ``--resume``/``load_from`` can be
        used: finite, and computed for this teacher and class list."""
        bad = model.non_finite_state()
        if bad:
            raise ValueError(
                f'The checkpoint restored by --resume/load_from has NaN/Inf '
                f'values in {bad[:8]}: it was saved from a diverged run or '
                f'damaged. Resume from an earlier checkpoint of the run '
                f'(work_dir/epoch_N.pth).')
        stored = model.prototype_provenance
        stale = [
            what for what, old, new in zip((
                'teacher weights',
                'class names and order'), stored, provenance)
            if old is not None and new is not None and old != new
        ]
        if not stale:
            if stored[0] is None:
                runner.logger.warning(
                    'Teacher prototypes restored from a checkpoint that does '
                    'not record their teacher and classes; they cannot be '
                    'checked against this run.')
            runner.logger.info('Teacher prototypes restored from the '
                               'checkpoint; not recomputed.')
            return True
        what = ' and '.join(stale)
        if self.on_stale == 'error':
            raise ValueError(
                f'The teacher prototypes restored by --resume/load_from were '
                f'computed for other {what} than this run has (model.'
                f'teacher_ckpt={model.teacher_ckpt!r}, train_dataloader.'
                f'dataset). Recompute them: set custom_hooks=[dict(type='
                f'"TeacherPrototypeHook", on_stale="recompute")], or use the '
                f'teacher and dataset of that checkpoint.')
        runner.logger.warning(f'Teacher prototypes restored from the '
                              f'checkpoint were computed for other {what}: '
                              f'recomputing them (on_stale="recompute").')
        return False

    @staticmethod
    def load(path: str, model, provenance=(None, None)) -> torch.Tensor:
        """The class means of a prototype file written by ``save_to``,
        checked against the model's shape and, where the file records them,
        this run's teacher weights and class names."""
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'TeacherPrototypeHook.load_from={path!r} does not exist.')
        data = safe_torch_load(path, map_location='cpu')
        if not isinstance(data, dict) or 'class_means' not in data:
            raise ValueError(
                f'TeacherPrototypeHook.load_from={path!r} is not a prototype '
                f'file (expected a dict with "class_means", as written by '
                f'save_to).')
        expected = (model.num_classes, model.teacher_feat_dim)
        got = tuple(data['class_means'].shape)
        if got != expected:
            raise ValueError(
                f'TeacherPrototypeHook.load_from={path!r} holds prototypes of '
                f'shape {got}, but this model needs {expected} (num_classes, '
                f'teacher feature dim): the file is for another dataset or '
                f'teacher. Remove load_from to recompute them.')
        for key, what, current in zip(('teacher_sha256', 'classes_sha256'),
                                      ('teacher weights', 'class names'),
                                      provenance):
            recorded = data.get(key)
            if recorded and current and recorded != current:
                raise ValueError(
                    f'TeacherPrototypeHook.load_from={path!r} was computed '
                    f'for other {what} than this run has (model.teacher_ckpt'
                    f'={model.teacher_ckpt!r}, train_dataloader.dataset): '
                    f'remove load_from to recompute them.')
        return data['class_means']

    @staticmethod
    def _classes(runner):
        dataset = getattr(runner.train_dataloader, 'dataset', None)
        return getattr(dataset, 'metainfo', {}).get('classes')

    def _dataloader_cfg(self, runner) -> dict:
        cfg = runner.cfg
        pipeline = self.pipeline
        if pipeline is None:
            for key in ('test_dataloader', 'val_dataloader'):
                if cfg.get(key) is not None:
                    pipeline = innermost_dataset(
                        cfg[key]['dataset'])['pipeline']
                    break
        if pipeline is None:
            raise ValueError(
                'TeacherPrototypeHook needs the test pipeline: set its '
                'pipeline=[...] or give the config a test_dataloader.')
        loader = train_pass_loader_cfg(cfg.train_dataloader, pipeline)
        if self.batch_size is not None:
            loader['batch_size'] = self.batch_size
        if self.num_workers is not None:
            loader['num_workers'] = self.num_workers
        if loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
        return loader

    @torch.no_grad()
    def compute(self, runner, model):
        """One sharded teacher pass: per-class sums and counts, reduced."""
        loader = runner.build_dataloader(
            self._dataloader_cfg(runner), seed=runner.seed)
        K, d = model.num_classes, model.teacher_feat_dim
        device = model.prototypes.device
        sums = torch.zeros(K, d, dtype=torch.float64, device=device)
        counts = torch.zeros(K, dtype=torch.float64, device=device)
        bar = ProgressBar(len(loader)) if (self.progress
                                           and is_main_process()) else None
        runner.logger.info(
            f'Computing teacher prototypes over {len(loader.dataset)} '
            f'training samples ({len(loader)} batches on this rank).')
        for data in loader:
            data = model.data_preprocessor(data, training=False)
            labels = torch.cat([s.gt_label for s in data['data_samples']])
            labels = labels.to(device)
            if labels.numel() and (labels.min() < 0 or labels.max() >= K):
                bad = labels[(labels < 0) | (labels >= K)][0].item()
                raise ValueError(
                    f'A training label {bad} is outside [0, {K}): the '
                    f'dataset has more classes than the model '
                    f'(model.student.head.num_classes = '
                    f'model.teacher.head.num_classes = {K}). Set both to '
                    f'the number of classes of train_dataloader.dataset.')
            feats = model.teacher_features(data['inputs']).double()
            sums.index_add_(0, labels, feats)
            counts += torch.bincount(labels, minlength=K).double()
            if bar is not None:
                bar.update()
        if bar is not None:
            print()
        all_reduce(sums)
        all_reduce(counts)
        empty = (counts == 0).nonzero().flatten().tolist()
        if empty:
            classes = self._classes(runner)
            names = [classes[k] if classes else str(k) for k in empty[:10]]
            raise ValueError(
                f'No training sample for class index {empty[:10]} '
                f'({names}): a prototype needs at least one sample per class. '
                f'Give train_dataloader.dataset samples of every class, or '
                f'set model num_classes (student and teacher heads, now {K}) '
                f'to the classes it has, or pass precomputed prototypes with '
                f'TeacherPrototypeHook(load_from=...).')
        return (sums / counts[:, None]).float(), counts

"""Neural Collapse analysis of a trained model (classifier or distiller).

``analyse(config, checkpoint, split)`` runs the model over a split with the
test pipeline and returns top-1 accuracy and the NC metrics
(``mmnckd.evaluation.nc_metrics`` definitions) of its pre-logit features,
with ``nc3`` against the classifier weight (``ETFHead.weight`` or a linear
head's ``fc.weight``). For an ``NCKDDistiller`` the student is analysed
(``which='student'``) or the teacher (``which='teacher'``, its checkpoint
taken from ``model.teacher_ckpt``). With ``vs_teacher=True`` the teacher
also runs over the same images and ``gram_dist`` / ``gram_corr``
(:func:`~mmnckd.evaluation.teacher_geometry_gap`) compare the student's
class-mean geometry with the teacher's.
"""
import copy
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmpretrain.registry import MODELS

from ..evaluation import NCAccumulator, teacher_geometry_gap
from ..models.distillers import SingleTeacherDistiller
from ..models.utils import classifier_weight
from ..utils.loaders import innermost_dataset, train_pass_loader_cfg


def _dataloader_cfg(cfg, split: str) -> dict:
    test = copy.deepcopy(cfg.test_dataloader)
    if split == 'test':
        return test
    if split != 'train':
        raise ValueError(f'split must be "train" or "test", got {split!r}.')
    # no random augmentation, every training sample once
    loader = train_pass_loader_cfg(
        cfg.train_dataloader,
        innermost_dataset(test['dataset'])['pipeline'])
    loader['batch_size'] = test['batch_size']
    return loader


def build_model(cfg, checkpoint: Optional[str]):
    """The model of ``cfg`` with ``checkpoint`` loaded (a classifier or a
    distiller)."""
    model_cfg = copy.deepcopy(cfg.model)
    # as the Runner does: the config's data_preprocessor belongs to the model
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model


def classifier_of(model, cfg, which: str = 'student'):
    """The classifier to analyse: a distiller's student, or its teacher
    (loaded from ``model.teacher_ckpt``); a classifier itself."""
    if isinstance(model, SingleTeacherDistiller):
        if which == 'teacher':
            model.load_teacher(cfg.model.teacher_ckpt)
            return model.teacher.eval()
        return model.student.eval()
    return model.eval()


@torch.no_grad()
def analyse(config: str,
            checkpoint: Optional[str],
            split: str = 'test',
            which: str = 'student',
            cfg_options: Optional[dict] = None,
            keep_feats: bool = False,
            vs_teacher: bool = False) -> dict:
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if vs_teacher and (which != 'student' or 'teacher_ckpt' not in cfg.model):
        raise ValueError(
            f'vs_teacher compares a distiller\'s student with its '
            f'teacher: {config} is not a distiller with '
            f'model.teacher_ckpt, or which={which!r} is not "student".')
    model = build_model(cfg, checkpoint)
    preprocessor = model.data_preprocessor
    classifier = classifier_of(model, cfg, which)
    teacher = teacher_acc = None
    if vs_teacher:  # the same distiller's teacher: built and loaded once
        teacher = classifier_of(model, cfg, 'teacher')
        teacher_acc = NCAccumulator()
    loader = Runner.build_dataloader(_dataloader_cfg(cfg, split))
    acc = NCAccumulator()
    correct = total = 0
    kept_feats, kept_labels = [], []
    for data in loader:
        data = preprocessor(data, training=False)
        labels = torch.cat([s.gt_label for s in data['data_samples']])
        neck = classifier.extract_feat(data['inputs'])
        feats = classifier.head.pre_logits(neck)
        logits = classifier.head(neck)
        correct += (logits.argmax(1) == labels).sum().item()
        total += labels.numel()
        acc.update(feats, labels)
        if teacher is not None:
            teacher_acc.update(
                teacher.head.pre_logits(teacher.extract_feat(data['inputs'])),
                labels)
        if keep_feats:
            kept_feats.append(feats)
            kept_labels.append(labels)
    result = dict(top1=100.0 * correct / total, num_samples=total, split=split)
    result.update(acc.compute(classifier_weight(classifier.head)))
    if teacher is not None:
        result.update(teacher_geometry_gap(acc, teacher_acc))
    if keep_feats:
        result['feats'] = torch.cat(kept_feats)
        result['labels'] = torch.cat(kept_labels)
    return result

"""Tiny mmpretrain classifiers and NCKD distillers shared by the in-process
model, hook and checkpoint tests (1x28x28 input, K classes): a 32-d teacher,
an NCKD student (MLP projector + ETF head) and two distiller factories.

* ``distiller`` / ``batch`` / ``ready``: NC1 + NC2 + KD losses; ``batch(n)``
  gives ``n`` samples of cycling labels; ``ready`` sets random prototypes.
* ``all_losses_distiller`` / ``labelled_batch`` / ``ready_to_train``: all
  four losses (``ALL_LOSSES``, NC1 with its contrastive term, NC2 with a
  memory, KD and DKD); ``labelled_batch(labels)`` gives one sample per
  listed label; ``ready_to_train`` sets random prototypes and train mode.
"""
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmnckd  # noqa: F401  (registers the types)

K = 6
D_T = 32  # teacher feature dim (ResNet_CIFAR-18 at width 4)


def classifier(width, head=None, neck=None, **kwargs):
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet_CIFAR',
            depth=18,
            in_channels=1,
            stem_channels=width,
            base_channels=width,
            strides=(2, 2, 2, 2),
            out_indices=(3, )),
        neck=neck or dict(type='GlobalAveragePooling'),
        head=head
        or dict(type='LinearClsHead', num_classes=K, in_channels=8 * width),
        **kwargs)


TEACHER = classifier(4)
NC_STUDENT = classifier(
    2,
    neck=dict(
        type='Projector',
        in_channels=16,
        out_channels=D_T,
        hidden_channels=32,
        mode='mlp'),
    head=dict(
        type='ETFHead', num_classes=K, in_channels=D_T, learnable_scale=True))


# --------------------------- NC1 + NC2 + KD (the distiller unit tests)
def distiller(**kwargs):
    cfg = dict(
        type='NCKDDistiller',
        student=NC_STUDENT,
        teacher=TEACHER,
        distill_losses=dict(
            loss_nc1=dict(type='PrototypeAlignLoss'),
            loss_nc2=dict(type='ETFStructureLoss'),
            loss_kd=dict(type='KDLoss', tau=4.0)))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def batch(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 1, 28, 28, generator=gen)
    labels = torch.arange(n) % K
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, samples, labels


def ready(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    model.set_prototypes(torch.randn(K, 32, generator=gen))
    return model


# ------------------------- all four losses (bad and awkward inputs)
ALL_LOSSES = dict(
    loss_nc1=dict(type='PrototypeAlignLoss', contrast_weight=0.5),
    loss_nc2=dict(type='ETFStructureLoss', momentum=0.9),
    loss_kd=dict(type='KDLoss', tau=4.0),
    loss_dkd=dict(type='DKDLoss', warmup_epochs=0))


def all_losses_distiller(**kwargs):
    cfg = dict(
        type='NCKDDistiller',
        student=NC_STUDENT,
        teacher=TEACHER,
        distill_losses=dict(ALL_LOSSES))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def labelled_batch(labels, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    inputs = torch.randn(len(labels), 1, 28, 28, generator=gen)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, samples


def ready_to_train(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    model.set_prototypes(torch.randn(K, D_T, generator=gen))
    return model.train()


def unit_prototypes(seed=0):
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(K, D_T, generator=gen)
    return F.normalize(mu - mu.mean(0), dim=1)


def assert_finite_step(model, losses):
    """All losses finite float32 scalars; backward gives finite grads."""
    for name, value in losses.items():
        assert value.dtype == torch.float32, (name, value.dtype)
        assert torch.isfinite(value).all(), (name, value)
    total, _ = model.parse_losses(losses)
    model.zero_grad()
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, 'no gradient reached the student'
    assert all(torch.isfinite(g).all() for g in grads)

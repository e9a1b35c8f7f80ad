"""``import mmnckd`` registers its types beside mmpretrain's."""
import torch


def test_registry_has_stock_and_mmnckd_types():
    from mmpretrain.registry import DATASETS, HOOKS, METRICS, MODELS

    import mmnckd  # noqa: F401

    for name in ('NCKDDistiller', 'PrototypeAlignLoss', 'ETFStructureLoss',
                 'KDLoss', 'DKDLoss', 'ETFHead', 'Projector', 'CRDLoss',
                 'SimKDLoss', 'SimKDNeck', 'FrozenLinearClsHead',
                 'SimKDDistiller', 'NCKDSimKDDistiller'):
        assert MODELS.get(name) is not None, name
    for name in ('TeacherPrototypeHook', 'RankConsistencyHook'):
        assert HOOKS.get(name) is not None, name
    assert METRICS.get('NCMetric') is not None
    for name in ('Omniglot', 'FashionMNISTIDX'):
        assert DATASETS.get(name) is not None, name
    from mmengine.fileio.backends import backends
    assert backends['atomic_local'].__name__ == 'AtomicLocalBackend'
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='ResNet_CIFAR',
                depth=18,
                in_channels=1,
                base_channels=8,
                stem_channels=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=64)))
    assert model(torch.zeros(2, 1, 28, 28), mode='tensor').shape == (2, 5)

"""Every config under configs/ (except configs/_base_/) loads, builds, takes
one loss step with finite loss and gradients, and predicts; its dataset,
metric, hook, optimizer and scheduler types are registered. No data and no
teacher checkpoint are needed (weights stay random), so this runs for the
CIFAR-100 and ImageNet configs too. Last, ``tools/train.py`` trains the
ImageNet NCKD config (ResNet-50 -> MobileNetV2 at 224x224) for one tiny
epoch on a generated class-folder dataset with a local teacher checkpoint.
The base dataset configs (``configs/_base_/datasets/``) give batches of the
right shape, normalised by their preprocessor."""
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from mmpretrain.registry import (DATASETS, HOOKS, METRICS, MODELS, OPTIMIZERS,
                                 PARAM_SCHEDULERS)
from mmpretrain.structures import DataSample

import mmnckd  # noqa: F401  (registers mmnckd's classes)
from mmnckd.models.distillers import SingleTeacherDistiller

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'
CONFIGS = sorted(
    p for p in CONFIG_DIR.rglob('*.py')
    if '_base_' not in p.relative_to(CONFIG_DIR).parts)

# input image size (H = W) of each dataset type the configs use
IMAGE_SIZE = {
    'Omniglot': 28,
    'FashionMNISTIDX': 28,
    'FashionMNIST': 28,
    'MNIST': 28,
    'CIFAR10': 32,
    'CIFAR100': 32,
    'ImageNet': 224,
    'ImageNet21k': 224,
}

init_default_scope('mmpretrain')


def config_id(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


def innermost_dataset(cfg: dict) -> dict:
    """The dataset config that owns the pipeline (through wrappers)."""
    while 'pipeline' not in cfg and 'dataset' in cfg:
        cfg = cfg['dataset']
    return cfg


def input_shape(cfg: Config):
    """(C, H, W) of the images the model sees: H = W from the dataset type,
    cross-checked against a crop in the test pipeline; C from the
    preprocessor's mean."""
    dataset = innermost_dataset(cfg.test_dataloader.dataset)
    size = IMAGE_SIZE.get(dataset['type'])
    crops = [
        t.get('crop_size') for t in dataset.get('pipeline', [])
        if t['type'] in ('CenterCrop', 'RandomCrop', 'RandomResizedCrop')
    ]
    if crops and isinstance(crops[-1], int):
        assert size in (None, crops[-1]), (dataset['type'], crops)
        size = crops[-1]
    assert size is not None, (
        f'tests/test_configs.py: add the image size of dataset type '
        f'{dataset["type"]!r} to IMAGE_SIZE')
    mean = (cfg.get('data_preprocessor') or {}).get('mean', [0, 0, 0])
    return len(mean), size, size


def build_model(cfg: Config):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    return MODELS.build(model_cfg)


def num_classes(model) -> int:
    if hasattr(model, 'num_classes'):  # NCKDDistiller
        return model.num_classes
    return model.head.num_classes


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_types_are_registered(path):
    cfg = Config.fromfile(str(path))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key) is None:
            continue
        loader = cfg[key]
        dataset_type = innermost_dataset(loader.dataset)['type']
        assert DATASETS.get(dataset_type) is not None, (key, dataset_type)
        ds = loader.dataset
        while ds is not None:  # wrappers too
            assert DATASETS.get(ds['type']) is not None, (key, ds['type'])
            ds = ds.get('dataset')
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key) or []
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for ev in evaluators:
            assert METRICS.get(ev['type']) is not None, (key, ev['type'])
    for hook in cfg.get('custom_hooks', []):
        assert HOOKS.get(hook['type']) is not None, hook['type']
    for hook in (cfg.get('default_hooks') or {}).values():
        assert HOOKS.get(hook['type']) is not None, hook['type']
    # checkpoints are written atomically (no partial epoch_N.pth on a full
    # disk): mmnckd.engine.fileio.AtomicLocalBackend
    assert cfg.default_hooks.checkpoint.backend_args == dict(
        backend='atomic_local')
    assert OPTIMIZERS.get(cfg.optim_wrapper.optimizer.type) is not None
    schedulers = cfg.param_scheduler
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for s in schedulers:
        assert PARAM_SCHEDULERS.get(s['type']) is not None, s['type']
    assert cfg.default_scope == 'mmpretrain'
    assert 'mmnckd' in cfg.custom_imports['imports']


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_builds_and_steps(path):
    torch.manual_seed(0)
    cfg = Config.fromfile(str(path))
    model = build_model(cfg)
    k = num_classes(model)
    distiller = isinstance(model, SingleTeacherDistiller)
    if hasattr(model, 'set_prototypes') and model.needs_prototypes:  # NCKD
        model.set_prototypes(torch.randn(k, model.teacher_feat_dim))
    c, h, w = input_shape(cfg)
    n = 2 if h >= 128 else 4  # BatchNorm needs > 1 sample
    inputs = [
        torch.randint(0, 256, (c, h, w), dtype=torch.uint8) for _ in range(n)
    ]

    model.train()
    # sample_idx as mmengine's BaseDataset sets it (CRD's memory reads it)
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i % k)
        for i in range(n)
    ]
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)
    assert tuple(data['inputs'].shape) == (n, c, h, w)
    losses = model(**data, mode='loss')
    if distiller and len(model.distill_losses):
        assert any(key.startswith('distill.') for key in losses), losses
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss), log_vars
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if distiller:  # the teacher is frozen and stays in eval mode
        assert not model.teacher.training
        assert all(p.grad is None for p in model.teacher.parameters())

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=inputs, data_samples=[DataSample() for _ in inputs]),
            False)
        preds = model(**data, mode='predict')
    assert len(preds) == n
    for pred in preds:
        assert 'pred_label' in pred
        assert 0 <= int(pred.pred_label) < k


def _write_class_folders(root: Path, classes: int, per_class: int):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f'class_{c}'
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)
            Image.fromarray(img).save(folder / f'{i}.png')


@pytest.mark.slow
def test_train_imagenet_nckd_config_on_tiny_data(tmp_path):
    """tools/train.py on
    configs/nckd/nckd_resnet50_mobilenetv2_8xb32_in1k.py: prototypes,
    training, validation and a checkpoint, on 4 classes x 2 random 224x224
    crops and a local random teacher checkpoint (the config itself unchanged
    but for data, class count and checkpoint path)."""
    base = REPO / 'configs/nckd/nckd_resnet50_mobilenetv2_8xb32_in1k.py'
    data_root = tmp_path / 'data'
    _write_class_folders(data_root, classes=4, per_class=2)

    cfg = Config.fromfile(str(base))
    teacher_cfg = copy.deepcopy(cfg.model.teacher)
    teacher_cfg.head.num_classes = 4
    teacher = MODELS.build(teacher_cfg)
    teacher_ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, teacher_ckpt)

    derived = tmp_path / 'tiny_r50_mbv2.py'
    derived.write_text(f'''_base_ = [{str(base)!r}]
data_root = {str(data_root)!r}
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 with_label=True, pipeline={{{{_base_.train_pipeline}}}}))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 with_label=True, pipeline={{{{_base_.test_pipeline}}}}))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='NCMetric')]
test_evaluator = val_evaluator
data_preprocessor = dict(num_classes=4)
model = dict(
    student=dict(head=dict(num_classes=4)),
    teacher=dict(head=dict(num_classes=4)),
    teacher_ckpt={str(teacher_ckpt)!r})
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1))
''')
    work_dir = tmp_path / 'work'
    proc = subprocess.run([
        sys.executable, 'tools/train.py',
        str(derived), '--work-dir',
        str(work_dir)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert (work_dir / 'epoch_1.pth').is_file(), out[-3000:]
    assert 'Loaded teacher weights from' in out
    assert (work_dir / 'teacher_prototypes.pth').is_file()
    assert 'Epoch(train) [1][4/4]' in out, out[-3000:]
    assert 'accuracy/top1' in out


# ------------------------------------------------- base dataset configs
@pytest.mark.parametrize('cfg_name,num_classes,batch_size', [
    ('omniglot_bs64.py', 242, 64),
    ('fashion_mnist_bs128.py', 10, 128),
])
def test_base_dataset_config(cfg_name, num_classes, batch_size, request):
    from mmengine.runner import Runner
    from mmpretrain.models import ClsDataPreprocessor

    cfg = Config.fromfile(REPO / 'configs' / '_base_' / 'datasets' / cfg_name)
    assert 'default_scope' not in cfg and 'custom_imports' not in cfg
    assert cfg.data_preprocessor.num_classes == num_classes
    assert len(cfg.data_preprocessor.mean) == 1
    assert len(cfg.data_preprocessor.std) == 1
    assert cfg.test_dataloader == cfg.val_dataloader
    if cfg_name.startswith('omniglot'):
        assert cfg.data_root == 'data/omniglot'
        # Resolve the repo-root-relative path independently of the cwd.
        cfg.train_dataloader.dataset.data_root = request.getfixturevalue(
            'omniglot_root')
    else:
        assert cfg.data_root == request.getfixturevalue('fashion_root')

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = Runner.build_dataloader(cfg.train_dataloader)
        batch = next(iter(loader))
        preprocessor = ClsDataPreprocessor(**cfg.data_preprocessor)
    assert loader.batch_size == batch_size
    inputs = batch['inputs']
    assert isinstance(inputs, torch.Tensor)
    assert inputs.shape == (batch_size, 1, 28, 28)
    assert inputs.dtype == torch.uint8
    labels = torch.cat([s.gt_label for s in batch['data_samples']])
    assert labels.shape == (batch_size, ) and labels.max() < num_classes
    out = preprocessor(batch, training=True)
    assert out['inputs'].shape == (batch_size, 1, 28, 28)
    assert out['inputs'].dtype == torch.float32
    # Normalized with the train mean/std: roughly zero mean, unit std.
    assert abs(out['inputs'].mean().item()) < 0.5
    assert 0.5 < out['inputs'].std().item() < 1.5

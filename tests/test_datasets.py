"""Tests of the embedded datasets (Omniglot, Fashion-MNIST) and their
base configs."""
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmnckd.datasets import FashionMNISTIDX, Omniglot
from mmnckd.datasets.fashion_mnist import FASHION_MNIST_CLASSES
from mmnckd.datasets.omniglot import OMNIGLOT_SMALL_CLASSES

REPO_ROOT = Path(__file__).resolve().parents[1]
FASHION_ROOT = Path('/usr/share/datasets/fashion-mnist')


@pytest.fixture(scope='module')
def omniglot_root():
    # The zips are tracked in the repository: a missing one is a failure.
    root = REPO_ROOT / 'data' / 'omniglot'
    assert (root / 'images_background_small1.zip').is_file(), root
    return str(root)


@pytest.fixture(scope='module')
def omniglot_train(omniglot_root):
    return Omniglot(data_root=omniglot_root, split='train')


@pytest.fixture(scope='module')
def omniglot_test(omniglot_root):
    return Omniglot(data_root=omniglot_root, split='test')


@pytest.fixture(scope='module')
def fashion_root():
    if not (FASHION_ROOT / 'train-images-idx3-ubyte.gz').is_file():
        pytest.skip(f'Fashion-MNIST not installed in {FASHION_ROOT}')
    return str(FASHION_ROOT)


def _images(dataset):
    return np.stack(
        [dataset.get_data_info(i)['img'] for i in range(len(dataset))])


def _labels(dataset):
    return np.array(
        [dataset.get_data_info(i)['gt_label'] for i in range(len(dataset))])


def _image_keys(dataset):
    """(label, image bytes) of every sample, to compare splits."""
    return {(int(info['gt_label']), info['img'].tobytes())
            for info in (dataset.get_data_info(i)
                         for i in range(len(dataset)))}


# ----------------------------------------------------------------- Omniglot
def test_omniglot_sizes_and_classes(omniglot_train, omniglot_test):
    assert len(omniglot_train) == 242 * 15 == 3630
    assert len(omniglot_test) == 242 * 5 == 1210
    classes = omniglot_train.metainfo['classes']
    assert len(classes) == 242
    assert tuple(classes) == OMNIGLOT_SMALL_CLASSES
    assert list(classes) == sorted(classes)
    assert classes[0] == 'Balinese/character01'
    assert 'Greek/character24' in classes
    assert 'Japanese_(katakana)/character47' in classes
    assert omniglot_test.metainfo['classes'] == classes
    # Every class has 15 train and 5 test images.
    assert np.all(np.bincount(_labels(omniglot_train), minlength=242) == 15)
    assert np.all(np.bincount(_labels(omniglot_test), minlength=242) == 5)


def test_omniglot_images(omniglot_train):
    imgs = _images(omniglot_train)
    assert imgs.dtype == np.uint8
    assert imgs.shape == (3630, 28, 28, 1)
    # Inverted: mostly dark background with bright strokes.
    assert imgs.mean() < 60
    assert imgs.max() == 255
    # Corners are background.
    assert imgs[:, 0, 0, 0].mean() < 10
    # Each image contains some stroke.
    assert np.all(imgs.reshape(len(imgs), -1).max(axis=1) > 100)
    # Images differ between samples (decoded, not a constant).
    assert len({img.tobytes() for img in imgs[:100]}) == 100


def test_omniglot_split_disjoint(omniglot_root, omniglot_train,
                                 omniglot_test):
    from mmnckd.datasets.omniglot import _OMNIGLOT_CACHE
    arrays = _OMNIGLOT_CACHE[(str(Path(omniglot_root).resolve()), 28)]
    assert arrays.images.shape == (4840, 28, 28, 1)
    assert set(arrays.drawers.tolist()) == set(range(1, 21))
    # No (class, drawer) pair is in both splits, and together they cover all.
    pairs = set(zip(arrays.labels.tolist(), arrays.drawers.tolist()))
    assert len(pairs) == 4840
    train_keys = _image_keys(omniglot_train)
    test_keys = _image_keys(omniglot_test)
    assert not train_keys & test_keys
    assert len(train_keys) + len(test_keys) >= 4800  # nearly all distinct


def test_omniglot_train_drawers_and_cache(omniglot_root, omniglot_train):
    from mmnckd.datasets import omniglot as omniglot_module
    n_cached = len(omniglot_module._OMNIGLOT_CACHE)
    train = Omniglot(data_root=omniglot_root, split='train', train_drawers=10)
    test = Omniglot(data_root=omniglot_root, split='test', train_drawers=10)
    # Same (data_root, image_size): nothing decoded again.
    assert len(omniglot_module._OMNIGLOT_CACHE) == n_cached
    assert len(train) == 2420
    assert len(test) == 2420
    assert not _image_keys(train) & _image_keys(test)
    # Drawers 1..10 are a subset of the default train split (drawers 1..15).
    assert _image_keys(train) <= _image_keys(omniglot_train)


def test_omniglot_image_size(omniglot_root):
    ds = Omniglot(data_root=omniglot_root, split='test', image_size=14)
    img = ds.get_data_info(0)['img']
    assert img.shape == (14, 14, 1) and img.dtype == np.uint8


def test_omniglot_pipeline(omniglot_root):
    ds = Omniglot(
        data_root=omniglot_root,
        split='test',
        pipeline=[dict(type='PackInputs')])
    sample = ds[0]
    assert isinstance(sample['inputs'], torch.Tensor)
    assert sample['inputs'].shape == (1, 28, 28)
    assert sample['inputs'].dtype == torch.uint8
    assert int(sample['data_samples'].gt_label) == 0
    # Train augmentation keeps the 1 x 28 x 28 shape.
    ds = Omniglot(
        data_root=omniglot_root,
        split='train',
        pipeline=[
            dict(type='RandomCrop', crop_size=28, padding=2),
            dict(type='PackInputs')
        ])
    assert ds[5]['inputs'].shape == (1, 28, 28)


def test_omniglot_lazy_init_and_no_serialize(omniglot_root):
    ds = Omniglot(
        data_root=omniglot_root,
        split='test',
        lazy_init=True,
        serialize_data=False)
    assert len(ds.metainfo['classes']) == 242  # known before loading
    ds.full_init()
    assert len(ds) == 1210
    img = ds.get_data_info(0)['img']
    img[...] = 0  # a copy: the shared cache must stay intact
    assert ds.get_data_info(0)['img'].max() > 0


def test_omniglot_missing_files(tmp_path, omniglot_root):
    missing_dir = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as e:
        Omniglot(data_root=str(missing_dir))
    assert str(missing_dir) in str(e.value)
    assert 'images_background_small1.zip' in str(e.value)

    shutil.copy(
        Path(omniglot_root) / 'images_background_small1.zip', tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        Omniglot(data_root=str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path / 'images_background_small2.zip') in msg
    assert 'omniglot' in msg.lower() and 'MIT' in msg


def test_omniglot_bad_args(omniglot_root):
    with pytest.raises(ValueError, match="'train', 'test'"):
        Omniglot(data_root=omniglot_root, split='val')
    with pytest.raises(ValueError, match='train_drawers'):
        Omniglot(data_root=omniglot_root, train_drawers=20)


# ------------------------------------------------------------ Fashion-MNIST
def test_fashion_mnist_full(fashion_root):
    train = FashionMNISTIDX(data_root=fashion_root, split='train')
    test = FashionMNISTIDX(data_root=fashion_root, split='test')
    assert len(train) == 60000
    assert len(test) == 10000
    assert train.metainfo['classes'] == FASHION_MNIST_CLASSES
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[0] == 'T-shirt/top'
    assert FASHION_MNIST_CLASSES[9] == 'Ankle boot'
    assert np.all(np.bincount(train.get_gt_labels(), minlength=10) == 6000)
    assert np.all(np.bincount(test.get_gt_labels(), minlength=10) == 1000)
    img = train.get_data_info(0)['img']
    assert img.shape == (28, 28, 1) and img.dtype == np.uint8
    # The first training image of Fashion-MNIST is an ankle boot.
    assert train.get_data_info(0)['gt_label'] == 9


def test_fashion_mnist_num_per_class(fashion_root):
    full = FashionMNISTIDX(data_root=fashion_root, split='test')
    ds = FashionMNISTIDX(
        data_root=fashion_root,
        split='test',
        num_per_class=7,
        pipeline=[dict(type='PackInputs')])
    assert len(ds) == 70
    labels = ds.get_gt_labels()
    assert np.all(np.bincount(labels, minlength=10) == 7)
    # Deterministic: the first 7 samples of each class, in file order.
    full_labels = full.get_gt_labels()
    expected = np.concatenate(
        [np.flatnonzero(full_labels == c)[:7] for c in range(10)])
    expected.sort()
    assert np.array_equal(labels, full_labels[expected])
    assert np.array_equal(ds.get_data_info(3)['img'],
                          full.get_data_info(int(expected[3]))['img'])
    sample = ds[0]
    assert sample['inputs'].shape == (1, 28, 28)
    with pytest.raises(ValueError, match='num_per_class'):
        FashionMNISTIDX(data_root=fashion_root, num_per_class=0)


def test_fashion_mnist_errors(tmp_path, fashion_root):
    with pytest.raises(ValueError, match="'train', 'test'"):
        FashionMNISTIDX(data_root=fashion_root, split='val')

    with pytest.raises(FileNotFoundError) as e:
        FashionMNISTIDX(data_root=str(tmp_path / 'nowhere'))
    assert str(tmp_path / 'nowhere') in str(e.value)
    assert 'apt-get install dataset-fashion-mnist' in str(e.value)

    # Test files present, train labels missing.
    for name in ('train-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte.gz',
                 't10k-labels-idx1-ubyte.gz'):
        shutil.copy(Path(fashion_root) / name, tmp_path)
    assert len(FashionMNISTIDX(data_root=str(tmp_path), split='test')) == 10000
    with pytest.raises(FileNotFoundError) as e:
        FashionMNISTIDX(data_root=str(tmp_path), split='train')
    msg = str(e.value)
    assert str(tmp_path / 'train-labels-idx1-ubyte.gz') in msg
    assert 'apt-get install dataset-fashion-mnist' in msg
    assert 'Fashion-MNIST' in msg


def test_fashion_mnist_corrupt(tmp_path):
    labels = np.array([0, 1, 2], dtype=np.uint8)
    images = np.zeros((3, 28, 28), dtype=np.uint8)

    def write(name, payload):
        with gzip.open(tmp_path / name, 'wb') as f:
            f.write(payload)

    def header(ndim, *dims):
        return bytes((0, 0, 8, ndim)) + np.array(dims, '>u4').tobytes()

    write('t10k-images-idx3-ubyte.gz', header(3, 3, 28, 28) + images.tobytes())
    write('t10k-labels-idx1-ubyte.gz', header(1, 3) + labels.tobytes())
    ds = FashionMNISTIDX(data_root=str(tmp_path), split='test')
    assert len(ds) == 3 and list(ds.get_gt_labels()) == [0, 1, 2]

    # Wrong magic number (images header in the labels file).
    write('train-images-idx3-ubyte.gz',
          header(3, 3, 28, 28) + images.tobytes())
    write('train-labels-idx1-ubyte.gz', header(3, 3, 28, 28) + b'\0' * 3)
    with pytest.raises(ValueError, match='magic') as e:
        FashionMNISTIDX(data_root=str(tmp_path), split='train')
    assert 'train-labels-idx1-ubyte.gz' in str(e.value)

    # Truncated data.
    write('train-labels-idx1-ubyte.gz', header(1, 3) + labels.tobytes()[:2])
    with pytest.raises(ValueError, match='Corrupt'):
        FashionMNISTIDX(data_root=str(tmp_path), split='train')

    # Not gzip at all.
    (tmp_path / 'train-labels-idx1-ubyte.gz').write_bytes(b'not gzip data')
    with pytest.raises(ValueError, match='gzip'):
        FashionMNISTIDX(data_root=str(tmp_path), split='train')


# ------------------------------------------------------------- base configs
@pytest.mark.parametrize('cfg_name,num_classes,batch_size', [
    ('omniglot_bs64.py', 242, 64),
    ('fashion_mnist_bs128.py', 10, 128),
])
def test_base_dataset_config(cfg_name, num_classes, batch_size, request):
    from mmengine.runner import Runner
    from mmpretrain.models import ClsDataPreprocessor

    cfg = Config.fromfile(REPO_ROOT / 'configs' / '_base_' / 'datasets' /
                          cfg_name)
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

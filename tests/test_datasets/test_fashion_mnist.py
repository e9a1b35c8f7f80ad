"""FashionMNISTIDX: the system's Fashion-MNIST IDX files (skipped where they
are not installed) and corrupt files."""
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmnckd.datasets import FashionMNISTIDX
from mmnckd.datasets.fashion_mnist import FASHION_MNIST_CLASSES


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
    assert np.array_equal(
        ds.get_data_info(3)['img'],
        full.get_data_info(int(expected[3]))['img'])
    sample = ds[0]
    assert sample['inputs'].shape == (1, 28, 28)
    with pytest.raises(ValueError, match='num_per_class'):
        FashionMNISTIDX(data_root=fashion_root, num_per_class=0)


def test_fashion_mnist_errors(tmp_path, fashion_root):
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        FashionMNISTIDX(data_root=fashion_root, split='valid')

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


def _items(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_val_split_is_held_out_of_train(fashion_root):
    """num_val_per_class=100 of num_per_class=1000: the last 100 per class
    are 'val', the first 900 'train'; 'test' is the test file."""
    from mmnckd.datasets import FashionMNISTIDX

    def split(name, **kwargs):
        return FashionMNISTIDX(
            data_root=fashion_root, split=name, pipeline=[], **kwargs)

    kw = dict(num_per_class=1000, num_val_per_class=100)
    train, val, full = split('train', **kw), split('val', **kw), split(
        'train', num_per_class=1000)
    assert (len(train), len(val), len(full)) == (9000, 1000, 10000)
    assert [sum(d['gt_label'] == c for d in _items(val))
            for c in range(10)] == [100] * 10
    key = lambda d: d['img'].tobytes()  # noqa: E731
    train_keys = [key(d) for d in _items(train)]
    val_keys = [key(d) for d in _items(val)]
    assert sorted(train_keys + val_keys) == sorted(
        key(d) for d in _items(full))
    assert len(split('test', **kw)) == 10000
    with pytest.raises(ValueError, match="split='val' needs"):
        split('val', num_per_class=1000)
    with pytest.raises(ValueError, match='below num_per_class'):
        split('train', num_per_class=100, num_val_per_class=100)


def test_val_fold_holds_out_another_block(fashion_root):
    """val_fold=1 with 100 of 1000 per class holds out images 801-900 of
    each class: disjoint from fold 0's val, 9000 to train on, fold 0's val
    among them; a fold past the training images is an error naming the
    range."""
    from mmnckd.datasets import FashionMNISTIDX

    def split(name, **kwargs):
        return FashionMNISTIDX(
            data_root=fashion_root,
            split=name,
            pipeline=[],
            num_per_class=1000,
            num_val_per_class=100,
            **kwargs)

    key = lambda d: d['img'].tobytes()  # noqa: E731
    val0 = {key(d) for d in _items(split('val'))}
    val1 = [key(d) for d in _items(split('val', val_fold=1))]
    train1 = {key(d) for d in _items(split('train', val_fold=1))}
    assert len(val1) == 1000 and len(train1) == 9000
    assert not val0 & set(val1) and not train1 & set(val1)
    assert val0 <= train1
    with pytest.raises(ValueError, match=r'val_fold must be an int in 0\.\.8'):
        split('val', val_fold=9)

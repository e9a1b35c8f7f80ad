"""The embedded Omniglot dataset (242 classes of the two small background
sets)."""
import hashlib
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import UnidentifiedImageError

from mmnckd.datasets import CorruptOmniglotError, Omniglot
from mmnckd.datasets.omniglot import (OMNIGLOT_SHA256, OMNIGLOT_SMALL_CLASSES,
                                      OMNIGLOT_ZIPS)


@pytest.fixture(scope='module')
def omniglot_train(omniglot_root):
    return Omniglot(data_root=omniglot_root, split='train')


@pytest.fixture(scope='module')
def omniglot_test(omniglot_root):
    return Omniglot(data_root=omniglot_root, split='test')


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


def test_omniglot_split_disjoint(omniglot_root, omniglot_train, omniglot_test):
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

    shutil.copy(Path(omniglot_root) / 'images_background_small1.zip', tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        Omniglot(data_root=str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path / 'images_background_small2.zip') in msg
    assert 'omniglot' in msg.lower() and 'MIT' in msg


def test_omniglot_bad_args(omniglot_root):
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        Omniglot(data_root=omniglot_root, split='valid')
    with pytest.raises(ValueError, match='train_drawers'):
        Omniglot(data_root=omniglot_root, train_drawers=20)


# ------------------------------------------------------ damaged zips
def _small_zips(root, omniglot_root, n=6, compression=zipfile.ZIP_DEFLATED):
    """Both zips in ``root`` with the first ``n`` images of the real ones,
    under their real names: ({zip name: path}, the members of zip 1)."""
    paths, members = {}, []
    for name in OMNIGLOT_ZIPS:
        with zipfile.ZipFile(Path(omniglot_root) / name) as src, \
                zipfile.ZipFile(root / name, 'w', compression) as dst:
            infos = [i for i in src.infolist()
                     if i.filename.endswith('.png')][:n]
            for info in infos:
                dst.writestr(info.filename, src.read(info))
            if not members:
                members = [i.filename for i in infos]
        paths[name] = root / name
    return paths, members


def _assert_names_and_fix(msg, zip_path, member=None):
    assert f'{str(zip_path)!r}' in msg
    if member is not None:
        assert f'member {member!r} of {str(zip_path)!r}' in msg
    assert 'Re-download the zip' in msg and 'git checkout' in msg
    assert 'data/omniglot/README.md' in msg
    assert OMNIGLOT_SHA256[zip_path.name] in msg  # the published sha256
    actual = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert f'its sha256 is {actual}' in msg


def test_small_zips_are_read_up_to_the_count_check(tmp_path, omniglot_root):
    """The control for the tests below: the undamaged small zips get past
    every read and decode, to the image count check."""
    _small_zips(tmp_path, omniglot_root)
    with pytest.raises(
            ValueError, match='has 12 unique images, expected '
            '4840'):
        Omniglot(data_root=str(tmp_path))


def test_truncated_zip_names_the_zip(tmp_path, omniglot_root):
    paths, _ = _small_zips(tmp_path, omniglot_root)
    path = paths['images_background_small2.zip']
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(CorruptOmniglotError) as err:
        Omniglot(data_root=str(tmp_path))
    assert isinstance(err.value.__cause__, zipfile.BadZipFile)
    msg = str(err.value)
    assert 'zipfile.BadZipFile: File is not a zip file' in msg
    _assert_names_and_fix(msg, path)


def _member_data_offset(path, member):
    """Where ``member``'s compressed bytes start in the zip file."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    header = path.read_bytes()[info.header_offset:info.header_offset + 30]
    name_len, extra_len = struct.unpack('<HH', header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


@pytest.mark.parametrize(
    'compression, cause',
    [(zipfile.ZIP_DEFLATED, 'zlib.error'),
     (zipfile.ZIP_STORED, 'zipfile.BadZipFile: Bad CRC-32')],
    ids=['deflated', 'stored'])
def test_flipped_bytes_in_a_member_name_zip_and_member(tmp_path, omniglot_root,
                                                       compression, cause):
    """Deflated: the stream no longer inflates; stored: the CRC-32 check."""
    paths, members = _small_zips(
        tmp_path, omniglot_root, compression=compression)
    path, member = paths['images_background_small1.zip'], members[3]
    start, size = _member_data_offset(path, member)
    data = bytearray(path.read_bytes())
    for i in range(start + size // 3, start + size // 3 + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptOmniglotError) as err:
        Omniglot(data_root=str(tmp_path))
    assert f'{cause}' in str(err.value)
    _assert_names_and_fix(str(err.value), path, member)


def test_member_that_is_no_png_names_zip_and_member(tmp_path, omniglot_root):
    _, members = _small_zips(tmp_path, omniglot_root)
    path = tmp_path / 'images_background_small1.zip'
    with zipfile.ZipFile(path, 'w') as zf:  # same names, one not a PNG
        for i, name in enumerate(members):
            zf.writestr(
                name, b'<html>not a png</html>' if i == 2 else _real_member(
                    omniglot_root, name))
    with pytest.raises(CorruptOmniglotError) as err:
        Omniglot(data_root=str(tmp_path))
    assert isinstance(err.value.__cause__, UnidentifiedImageError)
    assert 'PIL.UnidentifiedImageError: cannot identify' in str(err.value)
    _assert_names_and_fix(str(err.value), path, members[2])


def _real_member(omniglot_root, name):
    with zipfile.ZipFile(Path(omniglot_root) /
                         'images_background_small1.zip') as zf:
        return zf.read(name)


def test_intact_zip_that_fails_to_decode_blames_the_reader(
        tmp_path, omniglot_root, monkeypatch):
    """The published zips, unchanged, but PIL fails: the message says the
    file is intact (sha256 as published) and points at Pillow instead."""
    from mmnckd.datasets import omniglot as omniglot_module
    for name in OMNIGLOT_ZIPS:
        shutil.copy(Path(omniglot_root) / name, tmp_path)

    def broken(png, image_size):
        raise UnidentifiedImageError('cannot identify image file')

    monkeypatch.setattr(omniglot_module, '_decode', broken)
    with pytest.raises(CorruptOmniglotError) as err:
        Omniglot(data_root=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / 'images_background_small1.zip') in msg
    assert 'The zip is intact' in msg and 'Pillow' in msg
    assert OMNIGLOT_SHA256['images_background_small1.zip'] in msg
    assert 'Re-download' not in msg


def test_published_sha256_matches_readme_and_bundled_zips(omniglot_root):
    readme = (Path(omniglot_root) / 'README.md').read_text()
    for name, sha in OMNIGLOT_SHA256.items():
        assert f'| `{name}` |' in readme and f'`{sha}`' in readme, name
        data = (Path(omniglot_root) / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, name


def _items(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_val_split_is_held_out_of_train(omniglot_root):
    """val_drawers=2: drawers 14-15 are 'val' and leave 'train'; 'test'
    (16-20) is unchanged; together they are the 15 training drawers."""
    from mmnckd.datasets import Omniglot

    def split(name, **kwargs):
        return Omniglot(
            data_root=omniglot_root, split=name, pipeline=[], **kwargs)

    train, val = split('train', val_drawers=2), split('val', val_drawers=2)
    full, test = split('train'), split('test', val_drawers=2)
    assert (len(train), len(val), len(test)) == (242 * 13, 242 * 2, 1210)
    assert sorted(d['gt_label']
                  for d in _items(val)) == sorted(list(range(242)) * 2)
    key = lambda d: d['img'].tobytes()  # noqa: E731
    assert {key(d)
            for d in _items(train)} | {key(d)
                                       for d in _items(val)} == {
                                           key(d)
                                           for d in _items(full)
                                       }
    assert not {key(d) for d in _items(train)} & {key(d) for d in _items(val)}
    with pytest.raises(ValueError, match="split='val' needs val_drawers"):
        split('val')
    with pytest.raises(ValueError, match='val_drawers must be an int in'):
        split('train', val_drawers=15)


def test_val_fold_holds_out_another_block(omniglot_root):
    """val_fold=1 with val_drawers=2 holds out drawers 12-13: disjoint from
    fold 0's val, the same 242 x 13 training size, the same training union;
    a fold past the training drawers is an error naming the range."""
    from mmnckd.datasets import Omniglot

    def split(name, **kwargs):
        return Omniglot(
            data_root=omniglot_root,
            split=name,
            pipeline=[],
            val_drawers=2,
            **kwargs)

    key = lambda d: d['img'].tobytes()  # noqa: E731
    val0 = {key(d) for d in _items(split('val'))}
    val1 = {key(d) for d in _items(split('val', val_fold=1))}
    train1 = {key(d) for d in _items(split('train', val_fold=1))}
    assert len(val1) == 242 * 2 and len(train1) == 242 * 13
    assert not val0 & val1 and not train1 & val1
    assert val0 <= train1
    with pytest.raises(ValueError, match=r'val_fold must be an int in 0\.\.6'):
        split('val', val_fold=7)

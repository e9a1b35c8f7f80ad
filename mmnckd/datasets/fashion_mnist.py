"""Fashion-MNIST read from local gzipped IDX files (no download)."""
import gzip
import os.path as osp
import zlib
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .val_fold import check_val_fold

# training images per class in the Fashion-MNIST training file
TRAIN_PER_CLASS = 6000
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                         'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')

FASHION_MNIST_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}

_HOW_TO_GET = (
    'On Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (installs '
    'the files in /usr/share/datasets/fashion-mnist), or download '
    'train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, '
    't10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from the '
    'Fashion-MNIST repository (https://github.com/zalandoresearch/'
    'fashion-mnist, directory data/fashion) into `data_root`.')

# IDX magic number: two zero bytes, a type code, the number of dimensions.
_IDX_UBYTE = 0x08

#: Parsed ``(images, labels)`` per ``(realpath(data_root), split)``.
_FASHION_CACHE: Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]] = {}


def read_idx_ubyte(path: str, ndim: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes with ``ndim`` dimensions.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not valid gzip or not a well-formed IDX
            ``ubyte`` file of ``ndim`` dimensions.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Fashion-MNIST file not found: {path!r}. {_HOW_TO_GET}')
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f'Corrupt Fashion-MNIST file {path!r}: cannot '
                         f'decompress it as gzip ({e}).') from e
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f'Corrupt Fashion-MNIST file {path!r}: '
                         f'{len(data)} bytes is shorter than the IDX header.')
    magic = data[:4]
    expected_magic = bytes((0, 0, _IDX_UBYTE, ndim))
    if magic != expected_magic:
        raise ValueError(
            f'Corrupt Fashion-MNIST file {path!r}: IDX magic number '
            f'0x{magic.hex()}, expected 0x{expected_magic.hex()} '
            f'(unsigned bytes, {ndim} dimension(s)).')
    shape = tuple(
        int(d) for d in np.frombuffer(data, dtype='>u4', count=ndim, offset=4))
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) - header_len != size:
        raise ValueError(
            f'Corrupt Fashion-MNIST file {path!r}: the header says shape '
            f'{shape} ({size} bytes of data) but the file has '
            f'{len(data) - header_len} bytes of data.')
    return np.frombuffer(
        data, dtype=np.uint8, offset=header_len).reshape(shape)


def _load_fashion_arrays(data_root: str,
                         split: str) -> Tuple[np.ndarray, np.ndarray]:
    key = (osp.realpath(data_root), split)
    if key in _FASHION_CACHE:
        return _FASHION_CACHE[key]
    if not osp.isdir(data_root):
        raise FileNotFoundError(
            f'Fashion-MNIST data directory not found: {data_root!r}. '
            f'{_HOW_TO_GET}')
    img_file, label_file = FASHION_MNIST_FILES[split]
    img_path = osp.join(data_root, img_file)
    label_path = osp.join(data_root, label_file)
    for path in (img_path, label_path):  # report a missing file up front
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'Fashion-MNIST file not found: {path!r}. {_HOW_TO_GET}')
    images = read_idx_ubyte(img_path, ndim=3)
    labels = read_idx_ubyte(label_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f'Fashion-MNIST {split} files disagree: {images.shape[0]} images '
            f'in {img_path!r} but {labels.shape[0]} labels in '
            f'{label_path!r}.')
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f'Corrupt Fashion-MNIST file {label_path!r}: label '
                         f'{int(labels.max())} is out of range 0..9.')
    images = images[..., None]  # (N, H, W, 1), read-only (from bytes)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    _FASHION_CACHE[key] = (images, labels)
    return images, labels


@DATASETS.register_module()
class FashionMNISTIDX(BaseDataset):
    """Fashion-MNIST from local gzipped IDX files; never downloads.

    ``data_root`` must hold ``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
    ``t10k-labels-idx1-ubyte.gz``, as installed by the Debian package
    ``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist`` or as
    distributed by https://github.com/zalandoresearch/fashion-mnist. The IDX
    files are parsed with gzip + numpy (magic numbers and sizes are checked)
    and held in memory; parsed arrays are cached per ``(data_root, split)``
    in the process.

    Each sample's ``img`` is a ``uint8`` numpy array of shape
    ``(28, 28, 1)`` (as in :class:`Omniglot`), so a pipeline of only
    ``PackInputs`` yields a ``1 x 28 x 28`` tensor. ``split='train'`` has
    60000 images (6000 per class) and ``split='test'`` 10000.

    Args:
        data_root (str): The directory holding the four ``.gz`` files.
            Defaults to ``'/usr/share/datasets/fashion-mnist'``.
        split (str): ``'train'``, ``'val'`` (held out of the training file)
            or ``'test'``. Defaults to ``'train'``.
        num_per_class (int, optional): If set, keep only the first
            ``num_per_class`` samples (in file order) of each class, which is
            deterministic; useful for fast tests and benchmarks.
            Defaults to None (keep all).
        num_val_per_class (int): Of each class's (first ``num_per_class``)
            training images, ``num_val_per_class`` (the last ones, or the
            block ``val_fold`` picks) form the ``'val'`` split and leave the
            ``'train'`` split, for choosing options without the test split.
            Defaults to 0 (no val split).
        val_fold (int): Which block of ``num_val_per_class`` images per
            class is held out, counted from the end: fold ``f`` holds out
            images ``n - (f+1) * v + 1`` to ``n - f * v`` of each class
            (``n`` training images per class, ``v = num_val_per_class``;
            fold 0: the last ``v``), so several folds validate on different
            images (cross-validation). Defaults to 0.
        metainfo (dict, optional): Meta information; ``classes`` defaults to
            the 10 Fashion-MNIST class names.
        **kwargs: Other keyword arguments of :class:`BaseDataset`
            (``pipeline``, ``test_mode``, ``serialize_data``,
            ``lazy_init``, ...).
    """

    METAINFO = {'classes': FASHION_MNIST_CLASSES}
    SPLITS = ('train', 'val', 'test')

    def __init__(self,
                 data_root: str = '/usr/share/datasets/fashion-mnist',
                 split: str = 'train',
                 num_per_class: Optional[int] = None,
                 num_val_per_class: int = 0,
                 val_fold: int = 0,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'Unknown Fashion-MNIST split {split!r}; '
                             f'allowed values are {self.SPLITS}.')
        if num_per_class is not None and (isinstance(
                num_per_class, bool) or not isinstance(num_per_class, int)
                                          or num_per_class < 1):
            raise ValueError('num_per_class must be None or a positive int, '
                             f'got {num_per_class!r}.')
        if (isinstance(num_val_per_class, bool)
                or not isinstance(num_val_per_class, int)
                or num_val_per_class < 0
                or (num_per_class is not None
                    and num_val_per_class >= num_per_class)):
            raise ValueError(
                f'num_val_per_class must be an int >= 0 and below '
                f'num_per_class ({num_per_class}), got {num_val_per_class!r}.')
        check_val_fold(val_fold, num_val_per_class, num_per_class
                       or TRAIN_PER_CLASS,
                       f'num_val_per_class={num_val_per_class} images')
        if split == 'val' and num_val_per_class == 0:
            raise ValueError(
                "Fashion-MNIST split='val' needs num_val_per_class >= 1 (the "
                'training images per class held out for validation), e.g. '
                '100 of num_per_class=1000; set the same num_per_class and '
                'num_val_per_class on the train split so that it leaves '
                'them out.')
        if not data_root:
            raise ValueError('Please set `data_root` to the directory that '
                             f'holds the Fashion-MNIST files. {_HOW_TO_GET}')
        self.split = split
        self.num_val_per_class = num_val_per_class
        self.val_fold = val_fold
        self.num_per_class = num_per_class
        kwargs.setdefault('ann_file', '')
        super().__init__(data_root=data_root, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse (or fetch from the cache) the IDX files of the split."""
        file_split = 'test' if self.split == 'test' else 'train'
        images, labels = _load_fashion_arrays(self.data_root, file_split)
        if self.num_per_class is None and not self.num_val_per_class:
            indices = np.arange(len(labels))
        else:
            # per class, in file order: the val_fold-th block of
            # num_val_per_class from the end is 'val', the rest 'train'
            keep = np.zeros(len(labels), dtype=bool)
            for c in range(len(FASHION_MNIST_CLASSES)):
                of_class = np.flatnonzero(labels == c)[:self.num_per_class]
                end = len(of_class) - self.val_fold * self.num_val_per_class
                held_out = np.zeros(len(of_class), dtype=bool)
                held_out[end - self.num_val_per_class:end] = True
                if self.split == 'val':
                    keep[of_class[held_out]] = True
                elif self.split == 'train':
                    keep[of_class[~held_out]] = True
                else:
                    keep[of_class] = True
            indices = np.flatnonzero(keep)
        return [dict(img=images[i], gt_label=int(labels[i])) for i in indices]

    def extra_repr(self) -> List[str]:
        """Extra repr information of the dataset."""
        body = [f'Data root: \t{self.data_root}', f'Split: \t{self.split}']
        if self.num_per_class is not None:
            body.append(f'Samples per class: \t{self.num_per_class}')
        if self.num_val_per_class:
            body.append(f'Held out for val: \t{self.num_val_per_class} '
                        f'(fold {self.val_fold})')
        return body


__all__ = ['FashionMNISTIDX', 'FASHION_MNIST_CLASSES', 'read_idx_ubyte']

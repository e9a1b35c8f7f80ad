"""Omniglot "background small" subset as an in-memory classification set."""
import hashlib
import io
import os.path as osp
import re
import warnings
import zipfile
import zlib
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS
from PIL import Image

from .val_fold import check_val_fold

#: Number of characters of each alphabet in the union of
#: ``images_background_small1.zip`` and ``images_background_small2.zip``
#: (Greek and Latin are in both zips).
OMNIGLOT_SMALL_ALPHABETS = {
    'Balinese': 24,
    'Early_Aramaic': 22,
    'Greek': 24,
    'Japanese_(katakana)': 47,
    'Korean': 40,
    'Latin': 26,
    'Sanskrit': 42,
    'Tagalog': 17,
}

#: The 242 class names ``'Alphabet/characterNN'``, sorted lexicographically;
#: the position in this tuple is the class index.
OMNIGLOT_SMALL_CLASSES = tuple(
    sorted(f'{alphabet}/character{i:02d}'
           for alphabet, num in OMNIGLOT_SMALL_ALPHABETS.items()
           for i in range(1, num + 1)))

OMNIGLOT_ZIPS = ('images_background_small1.zip',
                 'images_background_small2.zip')
#: SHA256 of the published zips (the table of ``data/omniglot/README.md``).
OMNIGLOT_SHA256 = {
    'images_background_small1.zip':
    'f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4',
    'images_background_small2.zip':
    '3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f',
}
NUM_DRAWERS = 20

_HOW_TO_GET = (
    'The mmnckd repository ships both zips in `data/omniglot/` (the configs '
    "use data_root='data/omniglot': run the tools from the repository root). "
    'Elsewhere, get `python/images_background_small1.zip` and '
    '`python/images_background_small2.zip` from the Omniglot repository '
    '(https://github.com/brendenlake/omniglot, MIT license) and put both '
    'zips, unextracted, in `data_root`.')

# ``Alphabet/characterNN/XXXX_DD.png`` where DD is the drawer number.
_MEMBER_RE = re.compile(r'^([^/]+)/(character\d+)/\d+_(\d+)\.png$')


class CorruptOmniglotError(ValueError):
    """An Omniglot zip, or a PNG in it, that cannot be read.

    Raised for a zip that is not a (complete) zip file, a member whose
    compressed bytes fail to inflate or their CRC-32, and a member PIL cannot
    decode. The message names the zip, the member, the original error and
    the zip's SHA256 against the published one, and says to re-download it.
    """


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _corrupt(path: str, member: Optional[str],
             err: BaseException) -> CorruptOmniglotError:
    """The error for an unreadable zip (``member`` None) or member."""
    where = repr(path) if member is None else (
        f'member {member!r} of {path!r}')
    try:
        actual = _sha256(path)
    except OSError as e:
        actual = f'unknown ({e})'
    expected = OMNIGLOT_SHA256[osp.basename(path)]
    kind = type(err).__qualname__
    if type(err).__module__ != 'builtins':  # zlib.error, zipfile.BadZipFile
        kind = f'{type(err).__module__}.{kind}'
    what = f'Omniglot: cannot read {where} ({kind}: {err})'
    if actual == expected:
        return CorruptOmniglotError(
            f'{what}. The zip is intact (its sha256 {actual} is the published '
            f'one, data/omniglot/README.md), so this Python\'s zlib or PIL '
            f'failed to read it: check the Pillow installation (`pip install '
            f'--force-reinstall pillow`).')
    return CorruptOmniglotError(
        f'{what}; its sha256 is {actual}, the published file has {expected} '
        f'(data/omniglot/README.md): the file is damaged or not the '
        f'published one. Re-download the zip (in a clone of mmnckd: `git '
        f'checkout -- data/omniglot`) and check its sha256 (`sha256sum '
        f'{path}`) against data/omniglot/README.md. {_HOW_TO_GET}')


def _read_png(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str,
              image_size: int) -> np.ndarray:
    """Inflate and decode one member, naming the zip and member on error."""
    try:
        png = zf.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        # bad CRC-32 / local header, corrupt or cut-off deflate stream
        raise _corrupt(path, info.filename, e) from e
    try:
        return _decode(png, image_size)
    except (OSError, SyntaxError, ValueError, zlib.error) as e:
        # PIL: UnidentifiedImageError (an OSError) for bytes that are no
        # image, OSError / SyntaxError for a broken PNG stream
        raise _corrupt(path, info.filename, e) from e


class _OmniglotArrays(NamedTuple):
    """All unique images of the two zips, sorted by (class, drawer)."""
    images: np.ndarray  # (N, S, S, 1) uint8, read-only
    labels: np.ndarray  # (N,) int64 class index
    drawers: np.ndarray  # (N,) int64 drawer number in 1..20


#: Decoded arrays per ``(realpath(data_root), image_size)``, shared by all
#: Omniglot datasets of the process (e.g. the train and the test split).
_OMNIGLOT_CACHE: Dict[Tuple[str, int], _OmniglotArrays] = {}


def _decode(png: bytes, image_size: int) -> np.ndarray:
    img = Image.open(io.BytesIO(png)).convert('L')
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.BOX)
    # Omniglot draws black strokes on white: invert to bright strokes.
    return 255 - np.asarray(img, dtype=np.uint8)


def _load_omniglot_arrays(data_root: str, image_size: int) -> _OmniglotArrays:
    """Read, deduplicate and decode both zips (cached per process)."""
    key = (osp.realpath(data_root), image_size)
    if key in _OMNIGLOT_CACHE:
        return _OMNIGLOT_CACHE[key]

    if not osp.isdir(data_root):
        raise FileNotFoundError(
            f'Omniglot data directory not found: {data_root!r} '
            f'(resolved to {osp.abspath(data_root)!r}). {_HOW_TO_GET}')
    zip_paths = [osp.join(data_root, name) for name in OMNIGLOT_ZIPS]
    for path in zip_paths:
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'Omniglot zip not found: {path!r}. {_HOW_TO_GET}')

    class_to_idx = {name: i for i, name in enumerate(OMNIGLOT_SMALL_CLASSES)}
    # (label, drawer) -> image; the first zip wins on duplicates.
    samples: Dict[Tuple[int, int], np.ndarray] = {}
    seen: Dict[str, Tuple[str, int]] = {}  # in-zip path -> (zip, crc)
    for path in zip_paths:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, EOFError) as e:
            raise _corrupt(path, None, e) from e
        with zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                # Drop the first component (images_background_smallN/).
                parts = info.filename.split('/', 1)
                rel = parts[1] if len(parts) == 2 else parts[0]
                match = _MEMBER_RE.match(rel)
                if match is None:
                    continue  # not an Omniglot image, e.g. stray metadata
                if rel in seen:
                    first_zip, first_crc = seen[rel]
                    if first_crc != info.CRC:
                        warnings.warn(
                            f'Omniglot: {rel} differs between {first_zip} '
                            f'and {path}; using the one from {first_zip}.')
                    continue
                seen[rel] = (path, info.CRC)
                alphabet, character, drawer = match.groups()
                class_name = f'{alphabet}/{character}'
                if class_name not in class_to_idx:
                    raise ValueError(
                        f'Unexpected Omniglot class {class_name!r} in '
                        f'{path!r}: expected only the 242 characters of '
                        f'the "background small" alphabets '
                        f'{sorted(OMNIGLOT_SMALL_ALPHABETS)}.')
                drawer = int(drawer)
                sample_key = (class_to_idx[class_name], drawer)
                if not 1 <= drawer <= NUM_DRAWERS or sample_key in samples:
                    raise ValueError(
                        f'Unexpected Omniglot image {info.filename!r} in '
                        f'{path!r}: drawer must be unique per character and '
                        f'in 1..{NUM_DRAWERS}.')
                samples[sample_key] = _read_png(zf, info, path, image_size)

    expected = len(OMNIGLOT_SMALL_CLASSES) * NUM_DRAWERS
    if len(samples) != expected:
        raise ValueError(
            f'Omniglot in {data_root!r} has {len(samples)} unique images, '
            f'expected {expected} (242 characters x {NUM_DRAWERS} drawers); '
            f'the zips are incomplete or not the expected ones. '
            f'{_HOW_TO_GET}')

    keys = sorted(samples)
    images = np.stack([samples[k] for k in keys])[..., None]
    labels = np.array([k[0] for k in keys], dtype=np.int64)
    drawers = np.array([k[1] for k in keys], dtype=np.int64)
    for arr in (images, labels, drawers):
        arr.setflags(write=False)
    arrays = _OmniglotArrays(images, labels, drawers)
    _OMNIGLOT_CACHE[key] = arrays
    return arrays


@DATASETS.register_module()
class Omniglot(BaseDataset):
    """Omniglot "background small" alphabets as a 242-way classification set.

    The data are the two zips ``images_background_small1.zip`` and
    ``images_background_small2.zip`` of the Omniglot repository
    (https://github.com/brendenlake/omniglot, directory ``python/``, MIT
    license), both put, unextracted, in ``data_root``. Together they hold 8
    alphabets (Balinese, Early_Aramaic, Greek, Japanese_(katakana), Korean,
    Latin, Sanskrit, Tagalog); Greek and Latin are in both zips, byte for
    byte, and are deduplicated by their path inside the zip without the first
    component (``Alphabet/characterNN/XXXX_DD.png``). That gives 242
    characters, each drawn once by each of 20 people ("drawers", the ``_DD``
    suffix of the file name), i.e. 4840 images.

    **Classes.** Each character is a class named ``'Alphabet/characterNN'``;
    the class index is the position of the name in the lexicographically
    sorted list of the 242 names (``metainfo['classes']``).

    **Split.** The split is fixed and per character, by drawer: the
    ``split='train'`` set holds drawers ``1..train_drawers`` of every
    character and ``split='test'`` drawers ``train_drawers+1..20``. With the
    default ``train_drawers=15`` that is 242 x 15 = 3630 train and 242 x 5 =
    1210 test images; ``train_drawers=10`` gives a 10/10 split (2420/2420).
    No (character, drawer) image is in both splits.

    **Images.** Every PNG (105 x 105, black strokes on white) is decoded once
    at load time with PIL, converted to 8-bit grayscale, resized to
    ``image_size x image_size`` with ``Image.Resampling.BOX`` (area
    averaging, which anti-aliases the binary strokes) and inverted so that
    the strokes are bright on a dark background, like MNIST. Each sample's
    ``img`` is a ``uint8`` numpy array of shape ``(image_size, image_size,
    1)`` (the data are held in memory, as mmpretrain's ``MNIST`` does), so a
    pipeline of only ``PackInputs`` yields a ``1 x H x W`` tensor. The
    decoded arrays are cached per ``(data_root, image_size)`` in the process,
    so building the train and the test set decodes the zips only once.
    A zip that is damaged (not a complete zip, a member that fails to
    inflate or its CRC-32, a member that is no PNG) raises
    :class:`CorruptOmniglotError` naming the zip and the member.

    Args:
        data_root (str): The directory holding both zips.
            Defaults to ``'data/omniglot'``.
        split (str): ``'train'``, ``'val'`` or ``'test'``. Defaults to
            ``'train'``.
        train_drawers (int): Drawers ``1..train_drawers`` are training data,
            the others the test split. Must be in 1..19. Defaults to 15.
        val_drawers (int): ``val_drawers`` of the training drawers (the
            last ones, or the block ``val_fold`` picks) form the ``'val'``
            split and leave the ``'train'`` split, for
            choosing options without the test split (e.g. 1: train on drawers
            1..14, validate on drawer 15). Defaults to 0 (no val split).
        val_fold (int): Which block of ``val_drawers`` training drawers is
            held out, counted from the end: fold ``f`` holds out drawers
            ``train_drawers - (f+1) * val_drawers + 1`` to ``train_drawers -
            f * val_drawers`` (fold 0: the last ones), so several folds
            validate on different drawers (cross-validation) while each
            trains on the rest. Defaults to 0.
        image_size (int): Side of the square output images. Defaults to 28.
        metainfo (dict, optional): Meta information; ``classes`` defaults to
            the 242 sorted class names.
        **kwargs: Other keyword arguments of :class:`BaseDataset`
            (``pipeline``, ``test_mode``, ``serialize_data``,
            ``lazy_init``, ...).
    """

    METAINFO = {'classes': OMNIGLOT_SMALL_CLASSES}
    SPLITS = ('train', 'val', 'test')

    def __init__(self,
                 data_root: str = 'data/omniglot',
                 split: str = 'train',
                 train_drawers: int = 15,
                 val_drawers: int = 0,
                 val_fold: int = 0,
                 image_size: int = 28,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'Unknown Omniglot split {split!r}; '
                             f'allowed values are {self.SPLITS}.')
        if (isinstance(train_drawers, bool)
                or not isinstance(train_drawers, int)
                or not 1 <= train_drawers < NUM_DRAWERS):
            raise ValueError('train_drawers must be an int in '
                             f'1..{NUM_DRAWERS - 1}, got {train_drawers!r}.')
        if (isinstance(val_drawers, bool) or not isinstance(val_drawers, int)
                or not 0 <= val_drawers < train_drawers):
            raise ValueError(
                f'val_drawers must be an int in 0..train_drawers - 1 = '
                f'{train_drawers - 1}, got {val_drawers!r}.')
        check_val_fold(val_fold, val_drawers, train_drawers,
                       f'val_drawers={val_drawers} drawers')
        if split == 'val' and val_drawers == 0:
            raise ValueError(
                "Omniglot split='val' needs val_drawers >= 1 (the last "
                'training drawers held out for validation), e.g. '
                'val_drawers=1; set the same val_drawers on the train split '
                'so that it leaves them out.')
        if (isinstance(image_size, bool) or not isinstance(image_size, int)
                or image_size < 1):
            raise ValueError(
                f'image_size must be a positive int, got {image_size!r}.')
        if not data_root:
            raise ValueError('Please set `data_root` to the directory that '
                             f'holds the Omniglot zips. {_HOW_TO_GET}')
        self.split = split
        self.train_drawers = train_drawers
        self.val_drawers = val_drawers
        self.val_fold = val_fold
        self.image_size = image_size
        kwargs.setdefault('ann_file', '')
        super().__init__(data_root=data_root, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Decode (or fetch from the cache) and select the split."""
        arrays = _load_omniglot_arrays(self.data_root, self.image_size)
        last_val = self.train_drawers - self.val_fold * self.val_drawers
        first_val = last_val - self.val_drawers + 1
        held_out = (arrays.drawers >= first_val) & (arrays.drawers <= last_val)
        if self.split == 'train':
            keep = (arrays.drawers <= self.train_drawers) & ~held_out
        elif self.split == 'val':
            keep = held_out
        else:
            keep = arrays.drawers > self.train_drawers
        return [
            dict(img=arrays.images[i], gt_label=int(arrays.labels[i]))
            for i in np.flatnonzero(keep)
        ]

    def extra_repr(self) -> List[str]:
        """Extra repr information of the dataset."""
        return [
            f'Data root: \t{self.data_root}',
            f'Split: \t{self.split} (train drawers 1..{self.train_drawers}, '
            f'{self.val_drawers} of them for val, fold {self.val_fold})',
            f'Image size: \t{self.image_size}',
        ]


__all__ = ['Omniglot', 'OMNIGLOT_SMALL_CLASSES', 'CorruptOmniglotError']

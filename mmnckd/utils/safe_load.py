"""Load mmengine checkpoints under torch's ``weights_only=True``.

torch >= 2.6 unpickles checkpoints with ``weights_only=True`` by default, and
mmengine checkpoints carry a few non-tensor objects: the message hub's
``HistoryBuffer`` (holding numpy arrays, and its statistics methods pickled
as ``getattr(HistoryBuffer, 'mean')``) and numpy scalars/dtypes in the
runtime info. ``register_safe_globals`` allow-lists exactly those types with
``torch.serialization.add_safe_globals``: no ``weights_only=False`` anywhere,
no environment variable, and any other pickled global is still refused.
In particular ``builtins.getattr`` is not allowed as such: the name maps to
``history_buffer_getattr``, which only resolves HistoryBuffer's own
statistics methods and refuses every other attribute.

``register_safe_checkpoint_loaders`` replaces the loaders mmengine's
``CheckpointLoader`` uses for every path scheme (local paths, ``http(s)://``
URLs, ``torchvision://``, ``open-mmlab://``, ...) with ones that call
``torch.load(..., weights_only=True)`` explicitly -- mmengine's URL loader
passes ``weights_only=False`` and its local loader leaves it to torch's
default, which torch's "force no weights-only load" environment variable
turns off -- and whose
errors name the file (and URL) and say why it was not loaded.
"""
import hashlib
import io
import logging
import os
import os.path as osp
import pickle
import re
import struct
import uuid
import zipfile
from typing import Optional
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import numpy as np
import torch


def _numpy_globals():
    # The types numpy's pickling of arrays, scalars and dtypes refers to.
    from numpy._core.multiarray import _reconstruct, scalar
    types = [
        np.ndarray,
        np.dtype,
        _reconstruct,
        scalar,
        # checkpoints pickled under numpy 1.x name the old module path
        (_reconstruct, 'numpy.core.multiarray._reconstruct'),
        (scalar, 'numpy.core.multiarray.scalar')
    ]
    for name in ('Float64DType', 'Float32DType', 'Float16DType', 'Int64DType',
                 'Int32DType', 'Int16DType', 'Int8DType', 'UInt8DType',
                 'BoolDType', 'StrDType', 'ObjectDType'):
        dtype_cls = getattr(np.dtypes, name, None)
        if dtype_cls is not None:
            types.append(dtype_cls)
    return types


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Refusing getattr({obj!r}, {name!r}) in a checkpoint: only '
        f'HistoryBuffer statistics methods are allowed.')


def safe_globals():
    """The list of globals mmengine checkpoints need beyond torch's own."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer,
            (history_buffer_getattr, 'builtins.getattr')] + _numpy_globals()


def register_safe_globals() -> None:
    """Allow-list mmengine's checkpoint types for ``weights_only`` loading."""
    torch.serialization.add_safe_globals(safe_globals())


# ---------------------------------------------------------------------------
# Checkpoint loaders for mmengine's ``CheckpointLoader``
# ---------------------------------------------------------------------------
#
# mmengine 0.10.7 registers one loader per path scheme with
# ``CheckpointLoader``; none of them passes ``weights_only`` to ``torch.load``:
#
# * ``load_from_http`` (``http://``, ``https://``) goes through
#   ``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults to
#   ``False``: a pickle served at a URL runs its code while the same file
#   given as a local path is refused;
# * ``load_from_local`` (prefix ``''``, the fallback for every path) and the
#   others call ``torch.load`` without ``weights_only``, so torch's
#   "force no weights-only load" environment variable turns the protection
#   off (torch only lets that variable override a call site that did not
#   pass ``weights_only`` explicitly).
#
# ``register_safe_checkpoint_loaders`` re-registers every scheme mmengine
# defines with the public ``CheckpointLoader.register_scheme(..., force=True)``
# so that each ends in ``torch.load(..., weights_only=True)``. The
# ``torchvision://``, ``open-mmlab://`` and ``mmcls://`` loaders are replaced
# too because mmengine's versions call its module-level ``load_from_http``
# directly rather than through the scheme table.

#: Seconds a download may wait on one socket operation before giving up.
DOWNLOAD_TIMEOUT_S = 120
_CHUNK = 1 << 20
# torch.hub's ``check_hash`` convention: ``name-<sha256 prefix>.ext``, the
# prefix being the first eight or more hex digits of the file's SHA256
# (mmpretrain's and mmnckd's published checkpoints are named this way).
_HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,64})\.[^.]+$')

_ALLOWED = ('only tensors, plain containers and Python scalars, and the '
            'types mmengine writes into checkpoints (allow-listed by '
            'mmnckd.utils.register_safe_globals) are allowed; a pickle that '
            'imports or calls other code is never loaded, whatever torch\'s '
            'environment variables say. If you trust the file and '
            'it needs another type, allow-list exactly that type with '
            'torch.serialization.add_safe_globals')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint that ``torch.load(weights_only=True)`` refused.

    A subclass of ``pickle.UnpicklingError`` (what torch raises) whose
    message names the file (and the URL it came from) and keeps torch's
    own explanation.
    """


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that is empty, truncated or not a torch file."""


class CheckpointDownloadError(RuntimeError):
    """A checkpoint URL that could not be downloaded completely."""


def _describe(source: str, cached: Optional[str]) -> str:
    if cached is not None and cached != source:
        return f'{source!r} (cached at {cached!r})'
    return repr(source)


def _is_corruption(err: BaseException) -> bool:
    """Whether an error of ``torch.load`` means the bytes are broken."""
    # what torch's readers and the restricted unpickler raise on cut-off or
    # garbled bytes (``LookupError``: a memo / stack reference that is not
    # there); a RuntimeError only when it comes from the zip reader, as a
    # RuntimeError may also be e.g. a CUDA map_location on a CPU machine.
    if isinstance(err, (EOFError, struct.error, zipfile.BadZipFile,
                        UnicodeDecodeError, LookupError, ValueError)):
        return True
    return isinstance(err, RuntimeError) and ('PytorchStreamReader' in str(err)
                                              or 'zip archive' in str(err))


def safe_torch_load(f,
                    map_location=None,
                    *,
                    source: Optional[str] = None,
                    cached: Optional[str] = None):
    """``torch.load(f, map_location, weights_only=True)`` with clear errors.

    ``weights_only=True`` is passed explicitly, so torch's "force no
    weights-only load" environment variable cannot turn it off. ``f`` is a path
    or a binary file object; ``source`` is what the user gave (a path or a
    URL, default ``f``) and ``cached`` the local file it was read from; both
    appear in the errors:

    * ``FileNotFoundError`` when the path does not exist;
    * :class:`CorruptCheckpointError` (a ``RuntimeError``) when the file is
      empty (0 bytes), truncated or otherwise not a ``torch.save`` file;
    * :class:`UnsafeCheckpointError` (a ``pickle.UnpicklingError``) when the
      restricted unpickler refuses a global: the message says the file was
      refused under ``weights_only=True``, what is allowed, and ends with
      torch's own message (naming the refused global).
    """
    is_path = isinstance(f, (str, os.PathLike))
    if source is None:
        source = os.fspath(f) if is_path else '<file object>'
    if is_path:
        cached = os.fspath(f) if cached is None else cached
        if not osp.isfile(f):
            raise FileNotFoundError(f'{os.fspath(f)} can not be found.')
    what = _describe(source, cached)
    redo = (f'; delete {cached!r} to download it again' if cached is not None
            and cached != source else '; re-save or re-download it')
    if is_path and osp.getsize(f) == 0:
        raise CorruptCheckpointError(
            f'Checkpoint {what} is empty (0 bytes): it is not a torch.save '
            f'file (an interrupted save or copy?){redo}.')
    try:
        return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {what}: torch.load(weights_only=True)'
            f' would not unpickle it. Under weights_only=True {_ALLOWED}. '
            f'Unpickler error: {e}') from e
    except Exception as e:
        if not _is_corruption(e):
            raise
        size = f' ({osp.getsize(f)} bytes)' if is_path else ''
        raise CorruptCheckpointError(
            f'Checkpoint {what}{size} is truncated or corrupted: it is not a '
            f'complete torch.save file ({type(e).__name__}: {e}){redo}.'
        ) from e


def _hash_prefix(filename: str) -> Optional[str]:
    """The SHA256 prefix a file name carries under torch.hub's convention."""
    match = _HASH_IN_NAME.search(filename)
    return match.group(1) if match else None


def download_checkpoint(url: str,
                        model_dir: Optional[str] = None,
                        progress: bool = False) -> str:
    """Download ``url`` into the torch hub cache and return the local path.

    The file goes where mmengine (through ``torch.hub``) puts it:
    ``<model_dir>/<basename of the URL path>``, ``model_dir`` defaulting to
    ``<torch.hub.get_dir()>/checkpoints`` (so ``TORCH_HOME`` and
    ``torch.hub.set_dir`` apply). A file already there is used as is, without
    network access. Otherwise the body is written to a uniquely named
    ``.partial`` file next to it and renamed into place only once complete,
    so an interrupted or concurrent download never leaves a broken file under
    the final name. The download is refused
    (:class:`CheckpointDownloadError`) when fewer bytes arrive than the
    server's ``Content-Length`` announced, or when the file name follows
    torch.hub's ``name-<sha256 prefix>.ext`` convention (8 to 64 lower-case
    hex digits before the extension) and the SHA256 of the body does not
    start with that prefix. ``progress`` is accepted for compatibility with
    mmengine's signature; a one-line message is logged instead of a bar.
    """
    filename = osp.basename(urlparse(url).path)
    if not filename:
        raise ValueError(f'Checkpoint URL {url!r} does not end with a file '
                         f'name.')
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(model_dir, filename)
    if osp.exists(cached):
        return cached
    os.makedirs(model_dir, exist_ok=True)
    from mmengine.logging import print_log
    print_log(f'Downloading: "{url}" to {cached}', logger='current')
    hash_prefix = _hash_prefix(filename)
    tmp = f'{cached}.{uuid.uuid4().hex}.partial'
    try:
        with open(tmp, 'xb') as out:
            request = Request(url, headers={'User-Agent': 'torch.hub'})
            try:
                with urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                    expected = resp.headers.get('Content-Length')
                    sha256, size = hashlib.sha256(), 0
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        sha256.update(chunk)
                        size += len(chunk)
            except (URLError, OSError) as e:
                raise CheckpointDownloadError(
                    f'Could not download checkpoint {url!r} to {cached!r}: '
                    f'{e}') from e
        if expected is not None and size != int(expected):
            raise CheckpointDownloadError(
                f'Download of checkpoint {url!r} is incomplete: got {size} of '
                f'{expected} bytes; nothing was written to {cached!r}.')
        if hash_prefix and not sha256.hexdigest().startswith(hash_prefix):
            raise CheckpointDownloadError(
                f'Checkpoint {url!r} fails its hash check: its file name says '
                f'the SHA256 starts with {hash_prefix!r}, the downloaded body '
                f'has {sha256.hexdigest()!r}; nothing was written to '
                f'{cached!r}.')
        os.replace(tmp, cached)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return cached


def _legacy_zip_member(path: str) -> Optional[bytes]:
    """The payload of a pre-1.6 checkpoint zipped by hand, else ``None``.

    ``torch.hub`` accepts a zip holding exactly one file (the
    ``torch.save`` output of torch < 1.6); it extracts it next to the cached
    file. Here the member is read into memory instead, so a member name can
    never overwrite another file in the cache.
    """
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()
        if len(members) != 1 or members[0].is_dir():
            return None
        return zf.read(members[0])


def load_url_weights_only(url: str,
                          map_location=None,
                          model_dir: Optional[str] = None,
                          progress: bool = False):
    """Download ``url`` (see :func:`download_checkpoint`) and load it with
    ``torch.load(weights_only=True)`` (see :func:`safe_torch_load`).

    The safe counterpart of ``torch.hub.load_state_dict_from_url`` /
    ``mmengine.utils.dl_utils.load_url``; errors name the URL and the cached
    file.
    """
    cached = download_checkpoint(url, model_dir=model_dir, progress=progress)
    payload = _legacy_zip_member(cached)
    if payload is not None:
        return safe_torch_load(
            io.BytesIO(payload), map_location, source=url, cached=cached)
    return safe_torch_load(cached, map_location, source=url, cached=cached)


def load_from_local(filename, map_location=None):
    """Load a local checkpoint file with ``torch.load(weights_only=True)``.

    Replaces mmengine's loader for the default prefix ``''`` (any path no
    other scheme claims). ``~`` is expanded; a missing file raises
    ``FileNotFoundError`` ("... can not be found.", as mmengine does); empty,
    truncated and refused files raise the errors of :func:`safe_torch_load`.
    """
    filename = osp.expanduser(filename)
    return safe_torch_load(filename, map_location)


def load_from_http(filename,
                   map_location=None,
                   model_dir=None,
                   progress=os.isatty(0)):
    """Load a checkpoint from an ``http(s)://`` URL under ``weights_only``.

    Replaces mmengine's ``load_from_http``. As there, in a distributed run
    rank 0 fetches first and the other ranks wait on a barrier, then read the
    file rank 0 put in the cache (a rank whose cache does not have it, e.g.
    on another machine, downloads it itself). Unlike mmengine, rank 0 only
    downloads before the barrier and re-raises its error after it, so a
    failed download does not leave the other ranks waiting forever; every
    rank then loads with ``torch.load(weights_only=True)``.
    """
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    error = None
    if rank == 0:
        try:
            download_checkpoint(filename, model_dir, progress)
        except Exception as e:  # re-raised after the barrier
            error = e
    if world_size > 1:
        barrier()
    if error is not None:
        raise error
    return load_url_weights_only(filename, map_location, model_dir, progress)


def load_from_torchvision(filename, map_location=None):
    """``torchvision://NAME`` (or the deprecated ``modelzoo://NAME``): the
    URL torchvision lists for ``NAME``, through :func:`load_from_http`."""
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import get_torchvision_models
    model_urls = get_torchvision_models()
    if filename.startswith('modelzoo://'):
        print_log(
            'The URL scheme of "modelzoo://" is deprecated, please '
            'use "torchvision://" instead',
            logger='current',
            level=logging.WARNING)
        model_name = filename[11:]
    else:
        model_name = filename[14:]
    return load_from_http(model_urls[model_name], map_location=map_location)


def load_from_openmmlab(filename, map_location=None):
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: mmengine's table maps
    ``NAME`` to a URL (loaded by :func:`load_from_http`) or to a file under
    ``$MMENGINE_HOME`` (loaded by :func:`safe_torch_load`)."""
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import (_get_mmengine_home,
                                            get_deprecated_model_names,
                                            get_external_models)
    model_urls = get_external_models()
    prefix_str = 'open-mmlab://'
    if filename.startswith(prefix_str):
        model_name = filename[13:]
    else:
        model_name = filename[12:]
        prefix_str = 'openmmlab://'
    deprecated_urls = get_deprecated_model_names()
    if model_name in deprecated_urls:
        print_log(
            f'{prefix_str}{model_name} is deprecated in favor '
            f'of {prefix_str}{deprecated_urls[model_name]}',
            logger='current',
            level=logging.WARNING)
        model_name = deprecated_urls[model_name]
    model_url = model_urls[model_name]
    if model_url.startswith(('http://', 'https://')):
        return load_from_http(model_url, map_location=map_location)
    return safe_torch_load(
        osp.join(_get_mmengine_home(), model_url),
        map_location,
        source=filename)


def load_from_mmcls(filename, map_location=None):
    """``mmcls://NAME``: the URL of mmcls' model zoo entry ``NAME`` through
    :func:`load_from_http`, with its keys renamed as mmengine does."""
    from mmengine.runner.checkpoint import (_process_mmcls_checkpoint,
                                            get_mmcls_models)
    model_urls = get_mmcls_models()
    checkpoint = load_from_http(
        model_urls[filename[8:]], map_location=map_location)
    return _process_mmcls_checkpoint(checkpoint)


def load_from_pavi(filename, map_location=None):
    """``pavi://PATH``: downloaded with pavi's modelcloud to a temporary
    directory and loaded with :func:`safe_torch_load`."""
    from tempfile import TemporaryDirectory
    assert filename.startswith('pavi://'), \
        f'Expected filename startswith `pavi://`, but get {filename}'
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.')
    model = modelcloud.get(filename[7:])
    with TemporaryDirectory() as tmp_dir:
        downloaded_file = osp.join(tmp_dir, model.name)
        model.download(downloaded_file)
        return safe_torch_load(downloaded_file, map_location, source=filename)


def load_from_ceph(filename, map_location=None, backend='petrel'):
    """``s3://`` / ``petrel://`` paths: read through mmengine's file backend
    and loaded from memory with :func:`safe_torch_load`."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(
        filename, backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return safe_torch_load(buffer, map_location, source=filename)


#: (prefixes, loader): the prefixes are exactly those mmengine registers, so
#: ``force=True`` replaces its loaders rather than adding new schemes.
SAFE_CHECKPOINT_LOADERS = (
    ('', load_from_local),
    (('http://', 'https://'), load_from_http),
    (('modelzoo://', 'torchvision://'), load_from_torchvision),
    (('open-mmlab://', 'openmmlab://'), load_from_openmmlab),
    ('mmcls://', load_from_mmcls),
    ('pavi://', load_from_pavi),
    ((r'(\S+\:)?s3://', r'(\S+\:)?petrel://'), load_from_ceph),
)


def register_safe_checkpoint_loaders() -> None:
    """Make every mmengine checkpoint scheme load with ``weights_only=True``.

    Registers the loaders of :data:`SAFE_CHECKPOINT_LOADERS` with
    ``mmengine.runner.CheckpointLoader.register_scheme(..., force=True)``,
    replacing mmengine's (idempotent; ``import mmnckd`` calls it). Everything
    that goes through ``CheckpointLoader`` is covered: ``load_from``,
    ``--resume``, ``mmengine.runner.load_checkpoint``,
    ``mmpretrain.get_model(..., pretrained=...)``, the distiller's
    ``teacher_ckpt`` and ``tools/test.py``.
    """
    from mmengine.runner import CheckpointLoader
    for prefixes, loader in SAFE_CHECKPOINT_LOADERS:
        CheckpointLoader.register_scheme(
            prefixes=prefixes, loader=loader, force=True)

"""AtomicLocalBackend: a local file backend whose writes are all or nothing.

mmengine's ``LocalBackend.put`` opens the final path and writes into it, so a
full disk (``ENOSPC``), a quota (``EDQUOT``) or a file size limit (``EFBIG``)
hit half way leaves a truncated file under the final name -- for
``CheckpointHook`` a partial ``epoch_N.pth``, named by ``last_checkpoint``
once a later write succeeds. This backend writes

1. the bytes to a temporary file ``.<name>.<random hex>.tmp`` in the same
   directory (so that the rename below stays on one file system),
2. ``flush`` + ``os.fsync`` (the bytes are on disk, not only in the page
   cache),
3. ``os.replace(tmp, target)``: an atomic rename on POSIX and Windows, then
   an fsync of the directory (best effort) so the rename is durable.

A reader therefore sees either the previous file or the complete new one.
On any ``OSError`` the temporary file is removed, the previous file (if
any) is left untouched and :class:`AtomicWriteError` (an ``OSError`` with
the original ``errno``) says which file, how many bytes were needed, how
many are free on that file system and what to do. A process killed during
the write (``SIGKILL``, power loss) can leave a hidden ``.*.tmp`` file, never
a partial target.

Configs select it by name (mmengine's ``register_backend`` registry)::

    default_hooks = dict(checkpoint=dict(
        type='CheckpointHook', backend_args=dict(backend='atomic_local')))

``import mmnckd`` (the configs' ``custom_imports``) registers it.
"""
import errno
import io
import os
import os.path as osp
import shutil
import uuid
from pathlib import Path
from typing import Union

import mmengine
import torch
from mmengine.fileio import LocalBackend, register_backend

#: The name configs give as ``backend_args=dict(backend=...)``.
ATOMIC_LOCAL = 'atomic_local'


class AtomicWriteError(OSError):
    """A file that could not be written completely; nothing was replaced.

    ``errno`` is the one of the failed write (``ENOSPC``, ``EFBIG``, ...),
    ``filename`` the target path; the message names both, the bytes needed
    and the bytes free, and says what to do.
    """

    def __str__(self) -> str:
        # OSError would append ": '<filename>'" after the full message
        if self.errno is None:
            return super().__str__()
        return f'[Errno {self.errno}] {self.strerror}'


def _free_bytes(directory: str) -> str:
    try:
        return f'{shutil.disk_usage(directory).free} bytes are'
    except OSError as e:
        return f'an unknown number of bytes is ({e})'


def _file_size_limit() -> str:
    try:
        import resource  # POSIX only
    except ImportError:
        return 'the file system\'s maximum file size was hit'
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY:
        return ('the file size limit of this process (RLIMIT_FSIZE, '
                '`ulimit -f`) is unlimited, so the file system\'s own maximum '
                'file size was hit')
    return (f'the file size limit of this process (RLIMIT_FSIZE, '
            f'`ulimit -f`) is {soft} bytes')


def _advice(code, nbytes: int, directory: str) -> str:
    move = (f'or write to a directory on a disk with at least {nbytes} bytes '
            f'free (tools/train.py --work-dir, or the CheckpointHook\'s '
            f'out_dir)')
    if code == errno.EFBIG:
        return (f'The file is too large: {_file_size_limit()}. Raise the '
                f'limit (`ulimit -f unlimited`) or write to another file '
                f'system (tools/train.py --work-dir).')
    if code == errno.EDQUOT:
        return (f'The disk quota of this user is exhausted (see `quota -s`): '
                f'free quota in {directory!r} {move}.')
    return f'Free space in {directory!r} {move}.'


def _write_error(err: OSError, filepath: str, nbytes: int,
                 existed: bool) -> AtomicWriteError:
    directory = osp.dirname(osp.abspath(filepath))
    name = errno.errorcode.get(err.errno, str(err.errno))
    kept = (f'the previous {filepath!r} is unchanged'
            if existed else f'no {filepath!r} was created')
    message = (f'Could not write {filepath!r}: {err.strerror or err} '
               f'({name}). It needs {nbytes} bytes; {_free_bytes(directory)} '
               f'free on the file system of {directory!r} '
               f'(shutil.disk_usage). The write went to a temporary file, '
               f'which was removed: {kept}. '
               f'{_advice(err.errno, nbytes, directory)}')
    if err.errno is None:
        return AtomicWriteError(message)
    error = AtomicWriteError(err.errno, message)
    error.filename = filepath
    return error


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (not possible everywhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` all or nothing (see the module doc).

    The parent directory is created if needed (as ``LocalBackend.put``
    does). The temporary file is created like ``open(path, 'wb')`` would
    create the target (mode ``0o666`` less the umask), so the new file gets
    the permissions a plain write would give it.

    Raises:
        AtomicWriteError: the write, the fsync or the rename failed; the
            temporary file is gone and the previous ``filepath`` unchanged.
    """
    filepath = os.fspath(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    existed = osp.exists(filepath)
    tmp = osp.join(directory,
                   f'.{osp.basename(filepath)}.{uuid.uuid4().hex}.tmp')
    try:
        mmengine.mkdir_or_exist(directory)
        with open(tmp, 'xb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except OSError as e:
        raise _write_error(e, filepath, len(data), existed) from e
    finally:
        if osp.lexists(tmp):
            try:
                os.remove(tmp)
            except OSError:
                pass
    _fsync_dir(directory)


def atomic_torch_save(obj, filepath: Union[str, Path]) -> None:
    """``torch.save(obj, filepath)`` all or nothing
    (:func:`atomic_write_bytes`)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), filepath)


@register_backend(ATOMIC_LOCAL, force=True)
class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` and ``put_text`` replace the target
    file atomically (temporary file, fsync, ``os.replace``), so a failed
    write never leaves a partial file and keeps the previous one.

    Reading, listing, removing and copying are ``LocalBackend``'s.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write the bytes ``obj`` to ``filepath`` atomically.

        Raises:
            AtomicWriteError: see :func:`atomic_write_bytes`.
        """
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` (encoded with ``encoding``) to
        ``filepath`` atomically.

        Raises:
            AtomicWriteError: see :func:`atomic_write_bytes`.
        """
        atomic_write_bytes(obj.encode(encoding), filepath)

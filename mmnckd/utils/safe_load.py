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
"""
import pickle

import numpy as np
import torch


def _numpy_globals():
    # The types numpy's pickling of arrays, scalars and dtypes refers to.
    from numpy._core.multiarray import _reconstruct, scalar
    types = [np.ndarray, np.dtype, _reconstruct, scalar,
             # checkpoints pickled under numpy 1.x name the old module path
             (_reconstruct, 'numpy.core.multiarray._reconstruct'),
             (scalar, 'numpy.core.multiarray.scalar')]
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
    return [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


def register_safe_globals() -> None:
    """Allow-list mmengine's checkpoint types for ``weights_only`` loading."""
    torch.serialization.add_safe_globals(safe_globals())

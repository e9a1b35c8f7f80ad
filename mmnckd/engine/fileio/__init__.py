from .atomic_local_backend import (ATOMIC_LOCAL, AtomicLocalBackend,
                                   AtomicWriteError, atomic_torch_save,
                                   atomic_write_bytes)

__all__ = [
    'ATOMIC_LOCAL', 'AtomicLocalBackend', 'AtomicWriteError',
    'atomic_write_bytes', 'atomic_torch_save'
]

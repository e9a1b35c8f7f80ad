"""Peak tensor memory of a block of PyTorch code, on any device.

CUDA has ``torch.cuda.max_memory_allocated``; the CPU has no allocator
statistics. :class:`TensorMemoryTracker` is a ``TorchDispatchMode`` that sees
every tensor an operator returns and counts the bytes of each distinct
storage while it is alive (a weak reference to the storage removes it when it
is freed)::

    current = sum(nbytes(s) for s in live storages)
    peak    = max(current) over the block

Tensors that exist before the block (parameters, buffers, optimizer state,
inputs) are counted when passed to ``track`` (or when an operator writes to
them in place), so ``peak`` is the whole training-step footprint: weights,
gradients, optimizer state, activations and temporaries. Storages are keyed
by their data pointer, so views of one tensor are counted once.
"""
import weakref
from typing import Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class TensorMemoryTracker(TorchDispatchMode):
    """Track live tensor storages; ``peak`` and ``current`` in bytes."""

    def __init__(self):
        super().__init__()
        self._live = {}  # (device, data_ptr) -> (nbytes, weakref)
        self.current = 0
        self.peak = 0

    def track(self, *objs) -> 'TensorMemoryTracker':
        """Count existing tensors: tensors, modules (parameters, buffers,
        gradients) and optimizers (their state)."""
        for obj in objs:
            for t in self._tensors(obj):
                self._add(t)
        return self

    @staticmethod
    def _tensors(obj) -> Iterable[torch.Tensor]:
        if isinstance(obj, torch.Tensor):
            yield obj
        elif isinstance(obj, torch.nn.Module):
            for p in obj.parameters():
                yield p
                if p.grad is not None:
                    yield p.grad
            yield from obj.buffers()
        elif isinstance(obj, torch.optim.Optimizer):
            for state in obj.state.values():
                yield from (v for v in state.values()
                            if isinstance(v, torch.Tensor))
        else:
            flat, _ = tree_flatten(obj)
            yield from (v for v in flat if isinstance(v, torch.Tensor))

    def _add(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = (str(storage.device), storage.data_ptr())
        if storage.nbytes() == 0 or key in self._live:
            return
        nbytes = storage.nbytes()
        self._live[key] = (nbytes,
                           weakref.ref(
                               storage, lambda _, k=key: self._free(k)))
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def _free(self, key) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            self.current -= entry[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat, _ = tree_flatten(out)
        for t in flat:
            if isinstance(t, torch.Tensor):
                self._add(t)
        return out

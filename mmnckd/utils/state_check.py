"""Strict checks of weights before they are used or written.

mmengine loads checkpoints non-strictly: a checkpoint of another model only
logs "The model and loaded state dict do not match exactly" and leaves the
unmatched parameters randomly initialised, so ``tools/test.py`` would print
the metrics of an untrained head. These helpers turn such a pair into an
error that lists the keys, and refuse NaN/Inf weights by name.
"""
import hashlib
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch


def _show(keys: Sequence[str], limit: int = 8) -> str:
    keys = list(keys)
    more = f', ... ({len(keys)} in all)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def strip_prefix(state: Mapping[str, torch.Tensor],
                 prefix: str) -> Dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix`` (DDP's ``module.`` removed
    first), with ``prefix`` stripped."""
    out = {}
    for key, value in state.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
    return out


def non_finite_entries(named: Iterable[Tuple[str, torch.Tensor]]) -> List[str]:
    """``'name (n of m values)'`` for each floating tensor holding NaN/Inf."""
    bad = []
    for name, value in named:
        if not (torch.is_tensor(value) and value.is_floating_point()):
            continue
        finite = torch.isfinite(value.detach())
        if not bool(finite.all()):
            count = int((~finite).sum())
            bad.append(f'{name} ({count} of {value.numel()} values)')
    return bad


def check_finite(named: Iterable[Tuple[str, torch.Tensor]], what: str,
                 fix: str) -> None:
    """Raise ``ValueError`` naming every non-finite tensor of ``named``."""
    bad = non_finite_entries(named)
    if bad:
        raise ValueError(f'{what} has NaN/Inf values in: {_show(bad)}. {fix}')


def state_differences(
    own: Mapping[str, torch.Tensor], given: Mapping
) -> Tuple[List[str], List[str], List[Tuple[str, Optional[tuple], tuple]]]:
    """How ``given`` (a loaded state dict) differs from ``own`` (a model's).

    Returns the sorted missing keys, the sorted unexpected keys and, for the
    shared keys whose shapes differ, ``(key, given shape, own shape)``
    (``given shape`` None when the loaded value is not a tensor).
    """
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    mismatched = [
        (k, tuple(given[k].shape) if torch.is_tensor(given[k]) else None,
         tuple(own[k].shape)) for k in sorted(set(own)
                                              & set(given))
        if getattr(given[k], 'shape', None) != own[k].shape
    ]
    return missing, unexpected, mismatched


def check_state_matches(model: torch.nn.Module,
                        state: Mapping[str, torch.Tensor],
                        what: str,
                        fix: str,
                        ignore: Tuple[str, ...] = ()) -> None:
    """Raise ``ValueError`` unless ``state`` has exactly ``model``'s keys
    (those starting with a prefix in ``ignore`` aside) with the same shapes
    (a non-tensor value is not compared).

    The message lists the missing keys, the unexpected keys and the shape
    mismatches, then ``fix``.
    """

    def keep(key):
        return not key.startswith(ignore)

    missing, unexpected, differ = state_differences(
        {
            k: v
            for k, v in model.state_dict().items() if keep(k)
        }, {
            k: v
            for k, v in state.items() if keep(k)
        })
    mismatched = sorted(f'{k}: {given} in the checkpoint, {own} in the model'
                        for k, given, own in differ if given is not None)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f'missing keys: {_show(missing)}')
        if unexpected:
            parts.append(f'unexpected keys: {_show(unexpected)}')
        if mismatched:
            parts.append(f'shape mismatches: {_show(mismatched)}')
        raise ValueError(f'{what} does not match the model ('
                         f'{"; ".join(parts)}). {fix}')


def weights_sha256(state: Mapping[str, torch.Tensor],
                   skip: Optional[Tuple[str, ...]] = None) -> str:
    """SHA-256 of a state dict's tensors (names, dtypes, shapes and bytes).

    The same weights give the same digest whatever file they were saved in,
    so a teacher is recognised by its weights, not by its path.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        if skip and key.startswith(skip):
            continue
        value = state[key]
        if not torch.is_tensor(value):
            continue
        value = value.detach().cpu().contiguous()
        digest.update(f'{key}|{value.dtype}|{tuple(value.shape)}|'.encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def names_sha256(names: Sequence[str]) -> str:
    """SHA-256 of an ordered list of class names."""
    return hashlib.sha256('\x1f'.join(map(str, names)).encode()).hexdigest()

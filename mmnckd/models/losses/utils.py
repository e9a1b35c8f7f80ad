"""Helpers shared by the NCKD losses."""
import contextlib

import torch

# ``eps`` for ``F.normalize``: a zero-norm feature becomes the zero vector
# (cosine 0 with everything) instead of NaN.
NORM_EPS = 1e-8


def label_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Turn labels into an ``(N, num_classes)`` float32 weight matrix.

    Args:
        labels (Tensor): either hard labels, an integer tensor of shape
            ``(N,)`` with values in ``[0, num_classes)``, or soft label
            scores, a tensor of shape ``(N, num_classes)`` (e.g. the
            ``gt_score`` produced by Mixup / CutMix, rows summing to 1).
        num_classes (int): the number of classes ``K``.

    Returns:
        Tensor: ``(N, K)`` float32, the one-hot encoding of hard labels or the
        soft scores cast to float32, on the device of ``labels``.
    """
    if not torch.is_tensor(labels):
        labels = torch.as_tensor(labels)
    if labels.dim() == 1:
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(
                'Hard labels must be an integer tensor of shape (N,), got a '
                f'{labels.dtype} tensor of shape {tuple(labels.shape)}; soft '
                'labels must have shape (N, num_classes).')
        labels = labels.long()
        if labels.numel() > 0:
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= num_classes:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f'Label {bad} is out of range [0, {num_classes}) for '
                    f'num_classes={num_classes}. Check the `num_classes` '
                    'setting of the loss / head in the config against the '
                    'dataset.')
        weights = torch.zeros(
            labels.numel(),
            num_classes,
            dtype=torch.float32,
            device=labels.device)
        weights.scatter_(1, labels.view(-1, 1), 1.0)
        return weights
    if labels.dim() == 2:
        if labels.shape[1] != num_classes:
            raise ValueError(
                f'Soft labels must have shape (N, num_classes) = '
                f'(N, {num_classes}), got {tuple(labels.shape)}. Check the '
                '`num_classes` setting in the config.')
        return labels.detach().float()
    raise ValueError(
        'Labels must be hard labels of shape (N,) or soft label scores of '
        f'shape (N, num_classes), got shape {tuple(labels.shape)}.')


def fp32_context(device: torch.device):
    """A context that disables autocast on ``device`` (no-op if unsupported).

    The losses cast their inputs to float32 themselves; disabling autocast
    keeps matmuls inside the loss in float32 under AMP as well.
    """
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # device type without autocast support
        return contextlib.nullcontext()


def check_loss_weight(loss: str, loss_weight: float) -> float:
    """``loss_weight`` if it is a finite number >= 0, else a ValueError that
    names the loss and the value (a negative weight would train the student
    away from the teacher)."""
    weight = float(loss_weight)
    if not weight >= 0 or weight == float('inf'):
        raise ValueError(
            f'{loss}: loss_weight must be a finite number >= 0, got '
            f'{loss_weight!r}; set 0 to switch the term off.')
    return weight

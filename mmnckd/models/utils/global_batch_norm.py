"""BatchNorm1d whose batch statistics cover the samples of all processes.

In training with ``torch.distributed`` initialised (``world_size > 1``)::

    n   = sum_r n_r                          (samples of all ranks)
    mu  = (1/n) sum_r sum_{i in r} x_i
    var = (1/n) sum_r sum_{i in r} (x_i - mu)^2
    y_i = gamma * (x_i - mu) / sqrt(var + eps) + beta

The sums are all-reduced with ``torch.distributed.nn.functional.all_reduce``,
which is differentiable (its backward all-reduces the gradients), so every
rank normalises with the statistics of the global batch and back-propagates
through them, like ``torch.nn.SyncBatchNorm``, which refuses CPU tensors;
this one runs on CPU (gloo) and GPU alike. The running statistics are
updated with the global mean and the unbiased global variance, so they are
identical on every rank. With one process or in eval mode it is plain
``BatchNorm1d``.

Why: ``Projector``'s BatchNorm1d normalises over the samples of a batch,
not over pixels like a convolution's BatchNorm2d; with 32 images per process
its statistics (and the running statistics used at test time) come from half
the samples a single process with 64 sees.
"""
import torch
import torch.distributed as torch_dist
import torch.nn as nn
from torch.distributed.nn.functional import all_reduce


def _distributed() -> bool:
    return (torch_dist.is_available() and torch_dist.is_initialized()
            and torch_dist.get_world_size() > 1)


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` over the global batch of all processes (see the
    module docstring); same parameters, buffers and checkpoint keys as
    ``nn.BatchNorm1d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _distributed()):
            return super().forward(x)
        if x.dim() != 2:
            raise ValueError(f'GlobalBatchNorm1d expects (N, C) inputs, got '
                             f'{tuple(x.shape)}.')
        # statistics in float32 (as autocast runs BatchNorm), output in the
        # input's dtype
        xf = x.float()
        stats = all_reduce(
            torch.cat([xf.sum(dim=0),
                       xf.new_tensor([float(x.size(0))])]))
        n = stats[-1]
        mean = stats[:-1] / n
        centred = xf - mean
        var = all_reduce((centred * centred).sum(dim=0)) / n
        y = centred * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.float() + self.bias.float()
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked)
                            if self.momentum is None else self.momentum)
                unbiased = var * n / (n - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        return y.to(x.dtype)

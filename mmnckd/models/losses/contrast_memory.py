"""ContrastMemory: one embedding per training sample, per modality (CRD).

Two banks, ``student`` and ``teacher``, each ``N x d`` (``N`` training
samples, ``d`` embedding dim), start uniform in ``[-a, a]`` with
``a = 1 / sqrt(d / 3)`` (so every coordinate has variance ``1 / d`` and a
row has norm about 1), as in the CRD reference code. After a training step
the rows of the batch's samples move towards their new embeddings ``v``
(unit vectors) and are put back on the unit sphere:

.. math::

    m_i \\leftarrow \\frac{\\beta\\, m_i + (1 - \\beta)\\, v_i}
                          {\\|\\beta\\, m_i + (1 - \\beta)\\, v_i\\|}

with ``beta = momentum`` (0.5 in CRD). Under ``torch.distributed`` the
caller first gathers the indices and embeddings of every rank
(:meth:`ContrastMemory.gather`, whose collectives every rank must issue in
every training step) and every rank applies the same :meth:`update`, so all
ranks keep an identical memory. A sample that occurs more than once in the
gathered batch (a padded sampler, repeated augmentation) is updated once,
with its last occurrence in rank order.

The banks are persistent buffers: saved in checkpoints, restored on resume.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist


class ContrastMemory(nn.Module):
    """The student and teacher memory banks of CRD.

    Args:
        num_samples (int): ``N``, the number of training samples; indices
            run over ``[0, N)``.
        embed_dim (int): ``d``, the embedding dim.
        momentum (float): ``beta`` in ``[0, 1)``, the weight of the old row.
    """

    def __init__(self, num_samples: int, embed_dim: int, momentum: float):
        super().__init__()
        if isinstance(
                num_samples,
                bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(
                f'num_samples must be an int >= 2 (the number of training '
                f'samples, len(train_dataloader.dataset)), got '
                f'{num_samples!r}.')
        if embed_dim < 1:
            raise ValueError(f'embed_dim must be >= 1, got {embed_dim}.')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f'momentum must be in [0, 1), got {momentum}: with 1 the '
                f'memory would never change.')
        self.num_samples = num_samples
        self.embed_dim = embed_dim
        self.momentum = momentum
        bound = 1.0 / math.sqrt(embed_dim / 3.0)
        for name in ('student', 'teacher'):
            init = torch.rand(num_samples, embed_dim) * (2 * bound) - bound
            self.register_buffer(name, init)

    def check_indices(self, idx: torch.Tensor) -> None:
        """Raise unless every index is in ``[0, N)``."""
        if idx.numel() == 0:
            return
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.num_samples:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f'sample_idx {bad} is out of range for the contrast memory '
                f'of num_samples={self.num_samples} rows: set num_samples '
                f'to the number of training samples, '
                f'len(train_dataloader.dataset) (e.g. model.distill_losses.'
                f'loss_crd.num_samples=...).')

    @staticmethod
    def gather(idx: torch.Tensor, v_s: torch.Tensor, v_t: torch.Tensor):
        """``(idx, v_s, v_t)`` of all ranks, concatenated in rank order.

        Batches may differ in size between ranks: each rank pads its rows
        to the largest batch (index -1) and the padding is dropped. Indices
        and embeddings travel in one float64 tensor (exact for both).
        """
        idx, v_s, v_t = idx.detach(), v_s.detach(), v_t.detach()
        if not dist.is_distributed():
            return idx, v_s, v_t
        size = torch.tensor([idx.numel()], device=idx.device)
        sizes = [int(s) for s in dist.all_gather(size)]
        rows = torch.cat(
            [idx[:, None].double(),
             v_s.double(), v_t.double()], dim=1)
        pad = rows.new_full((max(sizes) - rows.shape[0], rows.shape[1]), -1.)
        gathered = dist.all_gather(torch.cat([rows, pad]).contiguous())
        rows = torch.cat([g[:n] for g, n in zip(gathered, sizes)])
        d = v_s.shape[1]
        return (rows[:, 0].long(), rows[:, 1:1 + d].to(v_s.dtype),
                rows[:, 1 + d:].to(v_t.dtype))

    @torch.no_grad()
    def update(self, idx: torch.Tensor, v_s: torch.Tensor,
               v_t: torch.Tensor) -> None:
        """Move rows ``idx`` of the banks towards the unit embeddings
        ``v_s`` (student) and ``v_t`` (teacher); in distributed training
        pass the rows of all ranks (:meth:`gather`)."""
        self.check_indices(idx)
        v_s, v_t = v_s.detach().float(), v_t.detach().float()
        # one update per sample: its last occurrence
        uniq, inverse = torch.unique(idx, return_inverse=True)
        order = torch.arange(idx.numel(), device=idx.device)
        last = torch.zeros_like(uniq).scatter_reduce_(
            0, inverse, order, reduce='amax', include_self=False)
        idx = idx.to(self.student.device)
        last = last.to(self.student.device)
        for bank, v in ((self.student, v_s), (self.teacher, v_t)):
            v = v.to(bank.device)[last]
            rows = idx[last]
            mixed = self.momentum * bank[rows] + (1.0 - self.momentum) * v
            bank[rows] = F.normalize(mixed, dim=1, eps=1e-12)

    def extra_repr(self) -> str:
        return (f'num_samples={self.num_samples}, '
                f'embed_dim={self.embed_dim}, momentum={self.momentum}')

"""How far a student's class-mean geometry is from its teacher's.

For the same images, let ``mu_k`` be a model's class means over the classes
present for both models, ``mu_G`` their unweighted mean and
``h_k = (mu_k - mu_G) / ||mu_k - mu_G||`` (so the Gram ``H H^T`` holds the
cosines between centred class means, whatever the feature width). With
``H_s`` from the student and ``H_t`` from the teacher (``K`` classes):

- ``gram_dist = ||H_s H_s^T - H_t H_t^T||_F^2 / K^2`` (0: the same angles;
  the quantity NC2's ``ETFStructureLoss`` minimises, with the teacher's
  means in place of its prototypes);
- ``gram_corr`` = Pearson correlation of the ``K (K - 1) / 2`` off-diagonal
  cosines of the two Grams (1: the same ordering of which classes are
  close, up to scale).

These tell whether distillation has given the student the teacher's class
geometry: if plain KD already has ``gram_dist`` near 0 and ``gram_corr``
near 1, the NC terms have little left to transfer.
"""
from typing import Dict

import torch
import torch.nn.functional as F

from .nc_metrics import NCAccumulator


def _unit_centred_means(acc: NCAccumulator,
                        present: torch.Tensor) -> torch.Tensor:
    mu = acc.sums[present] / acc.counts[present, None].to(torch.float64)
    centred = mu - mu.mean(dim=0)
    return centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-300)


@torch.no_grad()
def teacher_geometry_gap(student: NCAccumulator,
                         teacher: NCAccumulator) -> Dict[str, float]:
    """``gram_dist`` and ``gram_corr`` (module docstring) of the student's
    class means against the teacher's, over the classes both have seen.

    Both accumulators must have been updated with the same images (their
    per-class counts must agree).
    """
    if student.sums is None or teacher.sums is None:
        raise ValueError('teacher_geometry_gap needs two accumulators that '
                         'have seen features; one has none.')
    # a class past one accumulator's last row has count 0 there
    n = max(student.counts.numel(), teacher.counts.numel())
    counts, counts_t = (
        F.pad(acc.counts.cpu(), (0, n - acc.counts.numel()))
        for acc in (student, teacher))
    if not torch.equal(counts, counts_t):
        raise ValueError(
            'teacher_geometry_gap: the student and teacher accumulators saw '
            'different images (their per-class counts differ); update both '
            'with the same batches.')
    present = torch.nonzero(counts > 0).flatten()
    K = present.numel()
    if K < 3:
        raise ValueError(f'teacher_geometry_gap needs at least 3 classes '
                         f'with samples (a correlation of the off-diagonal '
                         f'cosines), got {K}.')
    h_s = _unit_centred_means(student, present.to(student.sums.device))
    h_t = _unit_centred_means(teacher, present.to(teacher.sums.device))
    gram_s = (h_s @ h_s.t()).cpu()
    gram_t = (h_t @ h_t.t()).cpu()
    iu = torch.triu_indices(K, K, offset=1)
    off = torch.stack([gram_s[iu[0], iu[1]], gram_t[iu[0], iu[1]]])
    return dict(
        gram_dist=float((gram_s - gram_t).square().sum() / K**2),
        gram_corr=float(torch.corrcoef(off)[0, 1]))

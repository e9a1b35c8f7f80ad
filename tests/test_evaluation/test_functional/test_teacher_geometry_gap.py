"""``teacher_geometry_gap`` against hand-computed values, and through
``analyse(..., vs_teacher=True)`` on a real one-epoch NCKD run."""
import math

import pytest
import torch

from mmnckd.evaluation import NCAccumulator, teacher_geometry_gap


def at_angles(degrees, scale=1.0, shift=(0.0, 0.0), jitter=0.2, pad=0):
    """Two samples per class whose class means sit at ``degrees`` (in 2
    dims, then ``pad`` zero dims)."""
    means = torch.tensor(
        [[math.cos(math.radians(a)),
          math.sin(math.radians(a))] for a in degrees])
    means = scale * means + torch.tensor(shift)
    eps = torch.full_like(means, jitter)
    feats = torch.cat([means + eps, means - eps])
    feats = torch.cat([feats, torch.zeros(len(feats), pad)], dim=1)
    labels = torch.arange(len(degrees)).repeat(2)
    acc = NCAccumulator()
    acc.update(feats, labels)
    return acc


def test_same_geometry_at_another_scale_and_width():
    teacher = at_angles([0, 90, 180, 270])
    # 3x larger, shifted, and embedded in 5 dims: the same angles
    for pad in (0, 3):
        student = at_angles([0, 90, 180, 270],
                            scale=3.0,
                            shift=(1.0, -2.0),
                            pad=pad)
        gap = teacher_geometry_gap(student, teacher)
        assert gap['gram_dist'] == pytest.approx(0, abs=1e-12)
        assert gap['gram_corr'] == pytest.approx(1, abs=1e-12)


def test_known_value_two_classes_swapped():
    # teacher cosines (0,1) 0, (0,2) -1, (0,3) 0, (1,2) 0, (1,3) -1, (2,3) 0;
    # classes 1 and 2 swapped in the student: (0,1) -1, (2,3) -1, rest 0.
    # Four off-diagonal pairs differ by 1 (8 entries of the full matrix):
    # gram_dist = 8 / 16. Deviations from the mean -1/3: covariance -2/3,
    # variances 4/3 each: gram_corr = -1/2.
    gap = teacher_geometry_gap(
        at_angles([0, 180, 90, 270]), at_angles([0, 90, 180, 270]))
    assert gap['gram_dist'] == pytest.approx(0.5, abs=1e-12)
    assert gap['gram_corr'] == pytest.approx(-0.5, abs=1e-12)


def test_errors_name_the_problem():
    teacher = at_angles([0, 90, 180, 270])
    with pytest.raises(ValueError, match='different images'):
        teacher_geometry_gap(at_angles([0, 90, 180]), teacher)
    with pytest.raises(ValueError, match='at least 3 classes'):
        teacher_geometry_gap(at_angles([0, 90]), at_angles([0, 90]))
    with pytest.raises(ValueError, match='has none'):
        teacher_geometry_gap(NCAccumulator(), teacher)


@pytest.mark.slow
def test_analyse_vs_teacher_matches_features(nckd_run, omniglot_seed0):
    from mmnckd.apis import analyse
    cfg, work, _ = nckd_run
    ckpt = str(work / 'epoch_1.pth')
    result = analyse(str(cfg), ckpt, 'test', vs_teacher=True)
    student = analyse(str(cfg), ckpt, 'test', keep_feats=True)
    teacher = analyse(str(cfg), ckpt, 'test', which='teacher', keep_feats=True)
    assert torch.equal(student['labels'], teacher['labels'])

    def unit_gram(r):
        f, y = r['feats'].double(), r['labels']
        mu = torch.stack([f[y == k].mean(0) for k in y.unique()])
        h = torch.nn.functional.normalize(mu - mu.mean(0), dim=1)
        return h @ h.t()

    gram_s, gram_t = unit_gram(student), unit_gram(teacher)
    K = gram_s.shape[0]
    assert result['gram_dist'] == pytest.approx(
        float((gram_s - gram_t).square().sum()) / K**2, rel=1e-6)
    assert 0 < result['gram_dist'] and -1 <= result['gram_corr'] <= 1
    assert result['top1'] == pytest.approx(student['top1'])
    with pytest.raises(ValueError, match="which='teacher' is not"):
        analyse(str(cfg), ckpt, 'test', which='teacher', vs_teacher=True)
    with pytest.raises(ValueError, match='not a distiller'):
        analyse(
            str(omniglot_seed0[0]),
            str(omniglot_seed0[2]),
            'test',
            vs_teacher=True)

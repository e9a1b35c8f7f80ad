"""CRDLoss against a hand-computed NCE value; the normalising constants
estimated once; negatives drawn with replacement when N < K; index errors;
the memory and constants through a state_dict (resume) round-trip; the
memory across 2 gloo processes (identical ranks, equal to one process on
the concatenated batches)."""
import math
import os.path as osp

import pytest
import torch
import torch.multiprocessing as mp
from dist_utils import free_port, gloo_group
from mmpretrain.registry import MODELS
from small_models import TEACHER, K, classifier, labelled_batch

from mmnckd.models.losses import CRDLoss

# memories of the hand-computed case: 4 samples, 2-d unit embeddings
TEACHER_MEM = [[1., 0.], [0., 1.], [-1., 0.], [0., -1.]]
STUDENT_MEM = [[0., 1.], [1., 0.], [0.6, 0.8], [-1., 0.]]


def hand_case(**kwargs):
    """Identity embeddings and chosen memories: the scores are the dot
    products below, by hand."""
    crit = CRDLoss(
        num_samples=4,
        student_feat_dim=2,
        teacher_feat_dim=2,
        embed_dim=2,
        num_negatives=2,
        temperature=0.5,
        **kwargs)
    with torch.no_grad():
        for layer in (crit.embed_s, crit.embed_t):
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
        crit.memory.teacher.copy_(torch.tensor(TEACHER_MEM))
        crit.memory.student.copy_(torch.tensor(STUDENT_MEM))
    return crit


HAND_INPUTS = dict(
    student_feats=torch.tensor([[2., 0.], [0., 3.]]),  # -> (1, 0), (0, 1)
    teacher_feats=torch.tensor([[0., 1.], [0.6, 0.8]]),
    sample_idx=torch.tensor([0, 1]),
    negative_idx=torch.tensor([[2, 3], [0, 2]]))


def nce_side(scores, num_samples, temperature, eps=1e-7):
    """L_side by the formula, from the dot products (rows: samples,
    column 0: the positive); Z from these same scores."""
    e = [[math.exp(s / temperature) for s in row] for row in scores]
    z = num_samples * sum(map(sum, e)) / sum(map(len, e))
    noise = (len(scores[0]) - 1) / num_samples
    total = 0.0
    for row in e:
        p = [x / z for x in row]
        total += math.log(p[0] / (p[0] + noise + eps))
        total += sum(math.log(noise / (q + noise + eps)) for q in p[1:])
    return -total / len(scores), z


def test_nce_against_hand_computed_value():
    crit = hand_case(loss_weight=0.8).train()
    loss = crit(**HAND_INPUTS)
    # student anchors (1, 0), (0, 1) against the teacher memory rows of
    # candidates [0, 2, 3] and [1, 0, 2]
    student_side, z_s = nce_side([[1, -1, 0], [1, 0, 0]], 4, 0.5)
    # teacher anchors (0, 1), (0.6, 0.8) against the student memory
    teacher_side, z_t = nce_side([[1, 0.8, 0], [0.6, 0.8, 1]], 4, 0.5)
    assert loss.item() == pytest.approx(
        0.8 * (student_side + teacher_side), rel=1e-6)
    assert loss.item() == pytest.approx(0.8 * 2.6827727, rel=1e-6)
    # Z = N * mean exp(score / T) of the first batch, stored
    torch.testing.assert_close(crit.normaliser, torch.tensor([z_s, z_t]))
    assert z_s == pytest.approx(11.942298, rel=1e-6)


def test_normalisers_are_estimated_once():
    crit = hand_case().train()
    crit(**HAND_INPUTS)
    first = crit.normaliser.clone()
    other = dict(HAND_INPUTS, student_feats=torch.tensor([[0., 1.], [1., 1.]]))
    crit(**other)
    assert torch.equal(crit.normaliser, first)
    # in eval mode an unset Z is estimated from the batch but not stored
    fresh = hand_case().eval()
    value = fresh(**HAND_INPUTS)
    assert torch.equal(fresh.normaliser, torch.tensor([-1., -1.]))
    assert value.item() == pytest.approx(2.6827727, rel=1e-6)


def test_training_updates_the_batch_rows_after_the_loss():
    crit = hand_case(momentum=0.5).train()
    crit(**HAND_INPUTS)
    s = 1 / math.sqrt(2)
    # student rows 0, 1: 0.5 old + 0.5 (1, 0) / (0, 1), renormalised
    torch.testing.assert_close(crit.memory.student[:2],
                               torch.tensor([[s, s], [s, s]]))
    n = math.hypot(0.3, 0.9)  # 0.5 (0, 1) + 0.5 (0.6, 0.8)
    torch.testing.assert_close(crit.memory.teacher[:2],
                               torch.tensor([[s, s], [0.3 / n, 0.9 / n]]))
    assert torch.equal(crit.memory.teacher[2:], torch.tensor(TEACHER_MEM[2:]))
    evaluated = hand_case().eval()
    evaluated(**HAND_INPUTS)
    assert torch.equal(evaluated.memory.teacher, torch.tensor(TEACHER_MEM))


def test_more_negatives_than_samples_draws_with_replacement(monkeypatch):
    crit = CRDLoss(
        num_samples=5,
        student_feat_dim=3,
        teacher_feat_dim=4,
        num_negatives=64).train()
    drawn = []
    randint = torch.randint

    def record(high, size, **kwargs):
        out = randint(high, size, **kwargs)
        drawn.append((high, tuple(size), out))
        return out

    monkeypatch.setattr(torch, 'randint', record)
    feats = torch.randn(3, 3, requires_grad=True)
    loss = crit(feats, torch.randn(3, 4), torch.tensor([0, 4, 2]))
    (high, size, negatives), = drawn
    assert (high, size) == (5, (3, 64))  # 64 of 5 rows: repeats
    assert negatives.min() >= 0 and negatives.max() < 5
    assert len(negatives[0].unique()) <= 5
    loss.backward()
    assert torch.isfinite(loss) and feats.grad.abs().sum() > 0
    # K = 6 > N = 4, noise ratio K / N = 1.5: the formula, repeats given
    small = hand_case()
    small.num_negatives = 6
    value = small(
        **dict(HAND_INPUTS, negative_idx=torch.tensor([[2] * 6, [3] * 6])))
    # student side: rows 2 and 3 of the teacher memory score -1 with the
    # anchors (1, 0) and (0, 1); teacher side: rows 2 and 3 of the student
    # memory score 0.8 with (0, 1) and -0.6 with (0.6, 0.8)
    expected = (
        nce_side([[1] + [-1] * 6, [1] + [-1] * 6], 4, 0.5)[0] +
        nce_side([[1] + [0.8] * 6, [0.6] + [-0.6] * 6], 4, 0.5)[0])
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_index_errors_name_the_value_and_the_fix():
    crit = hand_case().train()
    for bad in (4, -2):
        with pytest.raises(ValueError) as err:
            crit(**dict(HAND_INPUTS, sample_idx=torch.tensor([0, bad])))
        msg = str(err.value)
        assert f'sample_idx {bad} is out of range' in msg
        assert 'num_samples=4' in msg
        assert 'loss_crd.num_samples' in msg
    # nothing was updated by the refused batches
    assert torch.equal(crit.memory.teacher, torch.tensor(TEACHER_MEM))
    with pytest.raises(ValueError, match='needs sample_idx'):
        crit(**dict(HAND_INPUTS, sample_idx=None))
    with pytest.raises(ValueError, match=r'one sample_idx per sample'):
        crit(**dict(HAND_INPUTS, sample_idx=torch.tensor([0, 1, 2])))
    with pytest.raises(ValueError, match=r'student_feats of shape \(N, 2\)'):
        crit(**dict(HAND_INPUTS, student_feats=torch.ones(2, 3)))


def _crd_distiller(num_samples=12):
    return MODELS.build(
        dict(
            type='SingleTeacherDistiller',
            student=classifier(2),
            teacher=TEACHER,
            distill_losses=dict(
                loss_crd=dict(
                    type='CRDLoss',
                    num_samples=num_samples,
                    num_negatives=20,
                    loss_weight=0.8))))


def _indexed_batch(indices, seed=0):
    inputs, samples = labelled_batch([i % K for i in indices], seed=seed)
    for s, i in zip(samples, indices):
        s.set_metainfo(dict(sample_idx=i))
    return inputs, samples


def test_distiller_binds_features_and_indices():
    model = _crd_distiller().train()
    crd = model.distill_losses.loss_crd
    assert (crd.embed_s.in_features, crd.embed_t.in_features) == (16, 32)
    inputs, samples = _indexed_batch([3, 7, 11, 0])
    before = crd.memory.student.clone()
    losses = model(inputs, samples, mode='loss')
    changed = (crd.memory.student != before).any(1).nonzero().flatten()
    assert changed.tolist() == [0, 3, 7, 11]
    total, _ = model.parse_losses(losses)
    total.backward()
    assert crd.embed_t.weight.grad.abs().sum() > 0  # teacher embed trains
    assert all(p.grad is None for p in model.teacher.parameters())
    inputs, samples = _indexed_batch([3, 12])
    with pytest.raises(ValueError, match='sample_idx 12 is out of range'):
        model(inputs, samples, mode='loss')


def test_memory_and_constants_survive_a_resume_round_trip():
    torch.manual_seed(0)
    model = _crd_distiller().train()
    for step in range(3):
        model(
            *_indexed_batch([step, step + 4, step + 8], seed=step),
            mode='loss')
    state = model.state_dict()
    keys = {'memory.student', 'memory.teacher', 'normaliser'}
    assert {f'distill_losses.loss_crd.{k}' for k in keys} <= set(state)
    torch.manual_seed(0)  # the same teacher (its weights are not saved)
    resumed = _crd_distiller().train()
    resumed.load_state_dict(state, strict=False)  # no teacher keys saved
    a, b = model.distill_losses.loss_crd, resumed.distill_losses.loss_crd
    for key in keys:
        assert torch.equal(a.state_dict()[key], b.state_dict()[key]), key
    # both continue identically (same draws of negatives)
    batch = _indexed_batch([1, 5, 9], seed=9)
    torch.manual_seed(1)
    first = model(*batch, mode='loss')['distill.loss_crd']
    torch.manual_seed(1)
    second = resumed(*batch, mode='loss')['distill.loss_crd']
    assert torch.equal(first, second)
    assert torch.equal(a.memory.teacher, b.memory.teacher)


# ---------------------------------------------------------------------------
# the memory under torch.distributed (2 processes, gloo)
# ---------------------------------------------------------------------------
N_DIST, DIMS = 10, (3, 5)
# per step and rank: sample indices (unequal batch sizes; index 6 on both
# ranks in step 1, as a padded sampler gives) and explicit negatives
RANK_IDX = [[[0, 1, 2], [3, 4]], [[5, 6], [6, 7, 8]], [[9, 0, 4], [1, 2]]]


def _rank_batches():
    gen = torch.Generator().manual_seed(7)
    steps = []
    for per_rank in RANK_IDX:
        steps.append([(torch.randn(len(idx), DIMS[0], generator=gen),
                       torch.randn(len(idx), DIMS[1],
                                   generator=gen), torch.tensor(idx),
                       torch.randint(N_DIST, (len(idx), 4), generator=gen))
                      for idx in per_rank])
    return steps


def _dist_crd():
    torch.manual_seed(0)
    return CRDLoss(
        N_DIST, *DIMS, embed_dim=6, num_negatives=4, momentum=0.5).train()


def _dist_worker(rank, world_size, port, out_dir):
    with gloo_group(rank, world_size, port):
        crit = _dist_crd()
        losses = []
        for step in _rank_batches():
            s, t, idx, neg = step[rank]
            losses.append(crit(s, t, idx, negative_idx=neg))
        torch.save(
            dict(state=crit.state_dict(), losses=torch.stack(losses).detach()),
            osp.join(out_dir, f'rank{rank}.pth'))


@pytest.mark.slow
def test_memory_identical_across_ranks_and_equal_to_one_process(tmp_path):
    mp.spawn(
        _dist_worker,
        args=(2, free_port(), str(tmp_path)),
        nprocs=2,
        join=True)
    results = [
        torch.load(tmp_path / f'rank{r}.pth', weights_only=True)
        for r in range(2)
    ]
    ranks = [r['state'] for r in results]
    for key in ('memory.student', 'memory.teacher', 'normaliser'):
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    # one process fed each step's concatenated batch (rank 0 first): the
    # same memory, and Z from the scores of both ranks
    ref = _dist_crd()
    for step in _rank_batches():
        s, t, idx, neg = (torch.cat(x) for x in zip(*step))
        ref(s, t, idx, negative_idx=neg)
    for key in ('memory.student', 'memory.teacher', 'normaliser'):
        torch.testing.assert_close(ranks[0][key], ref.state_dict()[key])
    # index 6 came twice in step 1: rank 1's row (the last) was used once
    alone = _dist_crd()
    for step in _rank_batches():
        alone(*step[0][:3], negative_idx=step[0][3])
    assert not torch.allclose(alone.memory.student, ref.memory.student)

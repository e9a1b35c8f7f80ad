"""ETFStructureLoss (NC2) against hand-computed values; its class-mean
memory (also across 2 gloo processes) and batch-composition edges (empty,
singleton and single-class batches)."""
import math
import os
import os.path as osp

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from dist_utils import free_port, gloo_group
from small_models import (D_T, K, all_losses_distiller, assert_finite_step,
                          labelled_batch, ready_to_train, unit_prototypes)

from mmnckd.models.losses import ETFStructureLoss, label_weights
from mmnckd.models.utils import etf_gram, simplex_etf


def unit(deg):
    rad = math.radians(deg)
    return [math.cos(rad), math.sin(rad)]


def tri_prototypes():
    """Unit prototypes at 90, 210 and 330 degrees: centred, a 3-class ETF."""
    return torch.tensor([unit(90), unit(210), unit(330)])


def features_with_means(means, jitter=0.3):
    """Two samples per class whose class mean is exactly ``means[k]``."""
    means = torch.as_tensor(means, dtype=torch.float32)
    eps = jitter * torch.ones_like(means)
    eps[:, 0] = -eps[:, 0]
    z = torch.cat([means + eps, means - eps])
    labels = torch.arange(len(means)).repeat(2)
    return z, labels


def test_etf_zero_for_scaled_shifted_teacher():
    protos = tri_prototypes()
    means = 2.5 * protos + torch.tensor([0.7, -1.2])
    z, labels = features_with_means(means)
    for target in ('teacher', 'etf'):  # the 3 prototypes form an ETF
        crit = ETFStructureLoss(3, 2, target=target)
        assert crit(z, labels, protos).item() == pytest.approx(0, abs=1e-6)


def test_etf_zero_for_higher_dim_etf():
    protos = simplex_etf(4, 6, seed=3)
    means = 0.5 * protos + 2.0
    z, labels = features_with_means(means)
    crit = ETFStructureLoss(4, 6, target='etf')
    assert crit(z, labels).item() == pytest.approx(0, abs=1e-6)
    assert crit(z, labels, protos).item() == pytest.approx(0, abs=1e-6)


def known_case_expected():
    # means (1,0), (-1,0), (0,3): centre (0,1); h0 = (1,-1)/sqrt2,
    # h1 = (-1,-1)/sqrt2, h2 = (0,1) -> off-diagonals 0, -1/sqrt2, -1/sqrt2.
    # Target off-diagonals are all -1/2; diagonals match.
    return 2 * ((0 + 0.5)**2 + 2 * (-1 / math.sqrt(2) + 0.5)**2)


def test_etf_known_value_and_reductions():
    z, labels = features_with_means([[1., 0.], [-1., 0.], [0., 3.]])
    sq = known_case_expected()
    mean_loss = ETFStructureLoss(
        3, 2, loss_weight=2.0)(z, labels, tri_prototypes())
    assert mean_loss.item() == pytest.approx(2.0 * sq / 9, abs=1e-6)
    row_loss = ETFStructureLoss(
        3, 2, loss_weight=2.0, reduction='row_sum')(z, labels,
                                                    tri_prototypes())
    assert row_loss.item() == pytest.approx(2.0 * sq / 3, abs=1e-6)
    assert row_loss.item() == pytest.approx(3 * mean_loss.item(), rel=1e-6)
    etf_loss = ETFStructureLoss(3, 2, target='etf')(z, labels)
    assert etf_loss.item() == pytest.approx(sq / 9, abs=1e-6)


def test_etf_memory_update_two_steps():
    crit = ETFStructureLoss(3, 2, momentum=0.5).train()
    assert crit.memory.dtype == torch.float32
    assert not crit.memory_valid.any()
    crit(
        torch.tensor([[1., 0.], [3., 0.], [0., 2.]]), torch.tensor([0, 0, 1]),
        tri_prototypes())
    assert crit.memory_valid.tolist() == [True, True, False]
    assert torch.allclose(crit.memory,
                          torch.tensor([[2., 0.], [0., 2.], [0., 0.]]))
    crit(
        torch.tensor([[4., 4.], [1., 1.]]), torch.tensor([0, 2]),
        tri_prototypes())
    assert crit.memory_valid.tolist() == [True, True, True]
    expected = torch.tensor([[0.5 * 2 + 0.5 * 4, 0.5 * 0 + 0.5 * 4], [0., 2.],
                             [1., 1.]])
    assert torch.allclose(crit.memory, expected)
    # Soft labels: weighted sums / weighted counts.
    crit(
        torch.tensor([[2., 2.]]), torch.tensor([[0.0, 0.5, 0.5]]),
        tri_prototypes())
    expected[1] = 0.5 * expected[1] + 0.5 * torch.tensor([2., 2.])
    expected[2] = 0.5 * expected[2] + 0.5 * torch.tensor([2., 2.])
    assert torch.allclose(crit.memory, expected)
    # No update in eval mode.
    crit.eval()
    crit(torch.tensor([[9., 9.]]), torch.tensor([0]), tri_prototypes())
    assert torch.allclose(crit.memory, expected)


def test_etf_memory_is_persistent():
    crit = ETFStructureLoss(3, 2).train()
    crit(
        torch.tensor([[1., 0.], [0., 2.]]), torch.tensor([0, 1]),
        tri_prototypes())
    state = crit.state_dict()
    assert {'memory', 'memory_valid'} <= set(state)
    fresh = ETFStructureLoss(3, 2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.memory, crit.memory)
    assert torch.equal(fresh.memory_valid, crit.memory_valid)


def test_etf_memory_used_for_absent_classes():
    protos = tri_prototypes()
    z01 = torch.tensor([[1., 0.], [-1., 0.]], requires_grad=True)
    lab01 = torch.tensor([0, 1])
    # Batch only: V = {0, 1}, G_s off-diagonal -1 vs target -1/2.
    only_batch = 2 * (-1 + 0.5)**2 / 4
    fresh = ETFStructureLoss(3, 2, momentum=0.9).train()
    assert fresh(z01, lab01, protos).item() == pytest.approx(only_batch)

    crit = ETFStructureLoss(3, 2, momentum=0.9).train()
    crit(torch.tensor([[0., 3.]]), torch.tensor([2]), protos)  # memory[2]
    loss = crit(z01, lab01, protos)
    # V = {0, 1, 2}: the means of the known case, class 2 from the memory.
    assert loss.item() == pytest.approx(known_case_expected() / 9, abs=1e-6)
    loss.backward()
    assert torch.isfinite(z01.grad).all() and z01.grad.abs().sum() > 0

    # momentum=0: batch only, the memory is not used.
    batch_only = ETFStructureLoss(3, 2, momentum=0.0).train()
    batch_only(torch.tensor([[0., 3.]]), torch.tensor([2]), protos)
    assert batch_only.memory_valid[2]
    assert batch_only(z01, lab01, protos).item() == pytest.approx(only_batch)


def test_etf_fewer_than_two_classes():
    crit = ETFStructureLoss(3, 2).train()
    z = torch.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    loss = crit(z, torch.tensor([1, 1]), tri_prototypes())
    assert loss.item() == 0.0 and torch.isfinite(loss)
    loss.backward()
    assert z.grad is not None and torch.equal(z.grad, torch.zeros_like(z))
    assert crit.memory_valid.tolist() == [False, True, False]


def test_etf_soft_labels_weighted_means():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, 2, generator=gen)
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6], [1.0, 0.0, 0.0],
                         [0.2, 0.0, 0.8]])
    means = (soft.t() @ z) / soft.sum(0)[:, None]
    by_means = ETFStructureLoss(3, 2)(means, torch.arange(3), tri_prototypes())
    by_soft = ETFStructureLoss(3, 2)(z, soft, tri_prototypes())
    assert by_soft.item() == pytest.approx(by_means.item(), abs=1e-6)
    assert by_soft.item() > 1e-4


def test_etf_gradients():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(6, 2, generator=gen, requires_grad=True)
    protos = tri_prototypes().requires_grad_(True)
    loss = ETFStructureLoss(3, 2)(z, torch.tensor([0, 1, 2, 0, 1, 2]), protos)
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert protos.grad is None


def test_etf_target_gram_cache_follows_prototypes():
    # The cached P P^T is recomputed when the prototypes change in place
    # (a new prototype pass) or are another tensor.
    z, labels = features_with_means([[1., 0.], [-1., 0.], [0., 3.]])
    protos = tri_prototypes()
    crit = ETFStructureLoss(3, 2)
    first = crit(z, labels, protos).item()
    assert crit(z, labels, protos).item() == pytest.approx(first, abs=1e-7)
    rotated = protos @ torch.tensor([[0., 1.], [-1., 0.]])  # same Gram
    assert crit(z, labels, rotated).item() == pytest.approx(first, abs=1e-6)
    protos.copy_(torch.tensor([[1., 0.], [1., 0.], [0., 1.]]))
    changed = crit(z, labels, protos).item()
    expected = ETFStructureLoss(3, 2)(z, labels, protos.clone()).item()
    assert changed == pytest.approx(expected, abs=1e-7)
    assert abs(changed - first) > 1e-3


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_etf_low_precision(dtype):
    z, labels = features_with_means([[1., 0.], [-1., 0.], [0., 3.]])
    crit = ETFStructureLoss(3, 2).train()
    loss = crit(z.to(dtype), labels, tri_prototypes().to(dtype))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(known_case_expected() / 9, abs=1e-2)
    assert crit.memory.dtype == torch.float32


def test_etf_zero_norm():
    # All class means coincide: every centred mean is zero.
    z = torch.zeros(3, 2, requires_grad=True)
    loss = ETFStructureLoss(3, 2)(z, torch.tensor([0, 1, 2]), tri_prototypes())
    assert torch.isfinite(loss)
    # G_s = 0, so the loss is ||G_t||_F^2 / 9 = (3 * 1 + 6 * 1/4) / 9.
    assert loss.item() == pytest.approx((3 + 6 * 0.25) / 9, abs=1e-6)
    loss.backward()
    assert torch.isfinite(z.grad).all()


def test_etf_errors():
    with pytest.raises(ValueError, match=r"'teacher', 'etf'"):
        ETFStructureLoss(3, 2, target='foo')
    with pytest.raises(ValueError, match=r"'mean', 'row_sum'"):
        ETFStructureLoss(3, 2, reduction='sum')
    crit = ETFStructureLoss(3, 2)
    with pytest.raises(ValueError, match=r'\(3, 2\).*\(4, 2\)'):
        crit(torch.rand(2, 2), torch.tensor([0, 1]), torch.rand(4, 2))
    with pytest.raises(ValueError, match=r'\(N, 2\).*\(2, 5\)'):
        crit(torch.rand(2, 5), torch.tensor([0, 1]), tri_prototypes())
    with pytest.raises(ValueError, match='prototypes'):
        crit(torch.rand(2, 2), torch.tensor([0, 1]), None)
    with pytest.raises(ValueError, match='num_classes'):
        crit(torch.rand(2, 2), torch.tensor([0, 3]), tri_prototypes())


def test_etf_gram_restriction_matches_util():
    # The ETF target restricted to V is the util's Gram restricted to V.
    gram = etf_gram(4)
    assert gram[0, 1].item() == pytest.approx(-1 / 3)
    protos = simplex_etf(4, 3, seed=0)
    # Classes {0, 2, 3} present; student means are the ETF vectors, but
    # centred over V only, so the loss is compared with a direct formula.
    z = protos[[0, 2, 3]]
    crit = ETFStructureLoss(4, 3, target='etf')
    h = F.normalize(z - z.mean(0), dim=1)
    idx = torch.tensor([0, 2, 3])
    expected = ((h @ h.t() - gram[idx][:, idx])**2).sum() / 9
    loss = crit(z, torch.tensor([0, 2, 3]))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize('momentum', [0.0, 0.9])
def test_nc2_empty_singleton_and_single_class_batches(momentum):
    loss = ETFStructureLoss(num_classes=K, feat_dim=D_T, momentum=momentum)
    protos = unit_prototypes()
    cases = {
        'empty classes 3-5': [0, 0, 1, 1, 2, 2],
        'one-sample class': [0, 0, 0, 1, 2, 2],
        'single class': [4, 4, 4, 4],
        'single sample': [5],
    }
    for name, labels in cases.items():
        z = torch.randn(len(labels), D_T, requires_grad=True)
        value = loss(z, torch.tensor(labels), protos)
        value.backward()
        assert torch.isfinite(value), name
        assert torch.isfinite(z.grad).all(), name
    if momentum == 0:  # batch only: one class present -> 0, still a graph
        z = torch.randn(3, D_T, requires_grad=True)
        value = loss(z, torch.tensor([4, 4, 4]), protos)
        assert value.item() == 0.0 and value.requires_grad
    else:  # the memory makes the single-class batch informative
        z = torch.randn(3, D_T, requires_grad=True)
        value = loss(z, torch.tensor([4, 4, 4]), protos)
        value.backward()
        assert value.item() > 0 and z.grad.abs().sum() > 0
    # the whole distiller on a single-class batch
    model = ready_to_train(
        all_losses_distiller(
            distill_losses=dict(
                loss_nc2=dict(type='ETFStructureLoss', momentum=momentum))))
    inputs, samples = labelled_batch([3, 3, 3, 3])
    assert_finite_step(model, model(inputs, samples, mode='loss'))


# ---------------------------------------------------------------------------
# ETFStructureLoss memory under torch.distributed (2 processes, gloo)
# ---------------------------------------------------------------------------
NUM_CLASSES, FEAT_DIM, MOMENTUM = 5, 3, 0.7


def _make_rank_batches():
    gen = torch.Generator().manual_seed(123)
    batches = []  # batches[step][rank] = (z, labels)
    for step in range(3):
        per_rank = []
        for rank, size in enumerate((4, 3)):
            z = torch.randn(size, FEAT_DIM, generator=gen)
            if step == 1 and rank == 1:  # soft labels on one rank
                labels = torch.softmax(
                    torch.randn(size, NUM_CLASSES, generator=gen), 1)
                labels = labels * (labels > 0.15)
                labels = labels / labels.sum(1, keepdim=True)
            else:
                # rank 0 never sees class 4 in step 0; rank 1 only 2-4.
                low = 0 if rank == 0 else 2
                high = NUM_CLASSES - 1 if step == 0 else NUM_CLASSES
                labels = torch.randint(low, high, (size, ), generator=gen)
            per_rank.append((z, labels))
        batches.append(per_rank)
    return batches


def _to_soft(labels):
    return label_weights(labels, NUM_CLASSES)


def _dist_worker(rank, world_size, port, out_dir):
    with gloo_group(rank, world_size, port):
        protos = simplex_etf(NUM_CLASSES, FEAT_DIM + 1)[:, :FEAT_DIM]
        crit = ETFStructureLoss(
            NUM_CLASSES, FEAT_DIM, momentum=MOMENTUM).train()
        for step in _make_rank_batches():
            z, labels = step[rank]
            loss = crit(z.requires_grad_(True), labels, protos)
            loss.backward()
        torch.save(
            {
                'memory': crit.memory.clone(),
                'valid': crit.memory_valid.clone()
            }, osp.join(out_dir, f'rank{rank}.pth'))


@pytest.mark.slow
def test_etf_memory_distributed(tmp_path):
    world_size = 2
    mp.spawn(
        _dist_worker,
        args=(world_size, free_port(), str(tmp_path)),
        nprocs=world_size,
        join=True)
    results = [
        torch.load(osp.join(tmp_path, f'rank{r}.pth'))
        for r in range(world_size)
    ]
    # Identical on both ranks (all-reduce is bitwise identical).
    assert torch.equal(results[0]['memory'], results[1]['memory'])
    assert torch.equal(results[0]['valid'], results[1]['valid'])

    # Equal to one process seeing the concatenated batches.
    protos = simplex_etf(NUM_CLASSES, FEAT_DIM + 1)[:, :FEAT_DIM]
    ref = ETFStructureLoss(NUM_CLASSES, FEAT_DIM, momentum=MOMENTUM).train()
    for step in _make_rank_batches():
        z = torch.cat([step[0][0], step[1][0]])
        labels = torch.cat([_to_soft(step[0][1]), _to_soft(step[1][1])])
        ref(z, labels, protos)
    assert torch.equal(results[0]['valid'], ref.memory_valid)
    assert ref.memory_valid.all()
    assert torch.allclose(results[0]['memory'], ref.memory, atol=1e-6)
    # Not what a single rank alone would have.
    alone = ETFStructureLoss(NUM_CLASSES, FEAT_DIM, momentum=MOMENTUM).train()
    for step in _make_rank_batches():
        alone(*step[0], protos)
    assert not torch.allclose(alone.memory, ref.memory)
    assert os.listdir(tmp_path)


def test_memory_momentum_weights_the_old_value():
    """memory = momentum * old + (1 - momentum) * batch mean, pinned with an
    asymmetric momentum (swapping the two factors gives another value)."""
    crit = ETFStructureLoss(3, 2, momentum=0.8, target='etf').train()
    crit(torch.tensor([[1., 0.], [3., 0.], [0., 1.]]), torch.tensor([0, 0, 1]))
    assert torch.equal(crit.memory[0], torch.tensor([2., 0.]))  # first: mean
    crit(torch.tensor([[0., 4.], [5., 5.]]), torch.tensor([0, 2]))
    assert torch.allclose(crit.memory[0], torch.tensor([1.6, 0.8]))
    assert torch.equal(crit.memory[1], torch.tensor([0., 1.]))  # not in batch
    assert torch.equal(crit.memory[2], torch.tensor([5., 5.]))
    assert crit.memory_valid.tolist() == [True, True, True]


def _global_batch_worker(rank, world_size, port, out_dir, global_batch):
    with gloo_group(rank, world_size, port):
        protos = simplex_etf(NUM_CLASSES, FEAT_DIM + 1)[:, :FEAT_DIM]
        crit = ETFStructureLoss(
            NUM_CLASSES,
            FEAT_DIM,
            momentum=MOMENTUM,
            global_batch=global_batch).train()
        losses, grads = [], []
        for step in _make_rank_batches():
            z, labels = step[rank]
            z = z.clone().requires_grad_(True)
            loss = crit(z, labels, protos)
            loss.backward()
            losses.append(loss.detach())
            grads.append(z.grad)
        torch.save(
            dict(losses=losses, grads=grads),
            osp.join(out_dir, f'rank{rank}.pth'))


@pytest.mark.slow
@pytest.mark.parametrize('global_batch', [True, False])
def test_global_batch_equals_one_process(tmp_path, global_batch):
    """With global_batch=True each of 2 processes computes the NC2 loss of
    the concatenated batch, and its features' gradient, averaged over the
    processes as DDP averages, is the one-process gradient; with False
    (the earlier behaviour) each process sees only its own batch means."""
    world_size = 2
    mp.spawn(
        _global_batch_worker,
        args=(world_size, free_port(), str(tmp_path), global_batch),
        nprocs=world_size,
        join=True)
    ranks = [
        torch.load(osp.join(tmp_path, f'rank{r}.pth'))
        for r in range(world_size)
    ]
    protos = simplex_etf(NUM_CLASSES, FEAT_DIM + 1)[:, :FEAT_DIM]
    ref = ETFStructureLoss(NUM_CLASSES, FEAT_DIM, momentum=MOMENTUM).train()
    for i, step in enumerate(_make_rank_batches()):
        sizes = [step[r][0].shape[0] for r in range(world_size)]
        z = torch.cat([step[0][0], step[1][0]]).requires_grad_(True)
        labels = torch.cat([_to_soft(step[0][1]), _to_soft(step[1][1])])
        loss = ref(z, labels, protos)
        loss.backward()
        expected = z.grad.split(sizes)
        for r in range(world_size):
            same_loss = torch.allclose(ranks[r]['losses'][i], loss, atol=1e-6)
            same_grad = torch.allclose(
                ranks[r]['grads'][i] / world_size, expected[r], atol=1e-6)
            assert same_loss == same_grad == global_batch, (i, r)

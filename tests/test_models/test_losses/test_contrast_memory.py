"""ContrastMemory (CRD's memory banks): the paper's initialisation, the
momentum update followed by re-normalisation against hand-computed values,
one update per sample, the index check and the state_dict round-trip."""
import math

import pytest
import torch

from mmnckd.models.losses import ContrastMemory


def test_initialisation_is_uniform_in_plus_minus_stdv():
    torch.manual_seed(0)
    mem = ContrastMemory(num_samples=2000, embed_dim=12, momentum=0.5)
    bound = 1.0 / math.sqrt(12 / 3)  # 0.5
    for bank in (mem.student, mem.teacher):
        assert bank.shape == (2000, 12) and bank.dtype == torch.float32
        assert bank.abs().max() <= bound
        assert bank.abs().max() > 0.99 * bound  # fills the interval
        # uniform on [-a, a]: variance a^2 / 3 = 1 / d
        assert bank.var().item() == pytest.approx(1 / 12, rel=0.05)
    assert not torch.equal(mem.student, mem.teacher)


def test_momentum_then_renormalisation():
    mem = ContrastMemory(num_samples=4, embed_dim=2, momentum=0.8)
    with torch.no_grad():
        mem.student.copy_(
            torch.tensor([[0., 1.], [1., 0.], [3., 4.], [0., 2.]]))
        mem.teacher.copy_(
            torch.tensor([[1., 0.], [0., 1.], [0., 0.5], [5., 0.]]))
    idx = torch.tensor([1, 3])
    v_s = torch.tensor([[0., 1.], [1., 0.]])
    v_t = torch.tensor([[0.6, 0.8], [0., 1.]])
    mem.update(idx, v_s, v_t)
    # student row 1: 0.8 (1, 0) + 0.2 (0, 1) = (0.8, 0.2), norm sqrt(0.68)
    # student row 3: 0.8 (0, 2) + 0.2 (1, 0) = (0.2, 1.6), norm sqrt(2.6)
    # teacher row 1: 0.8 (0, 1) + 0.2 (0.6, 0.8) = (0.12, 0.96)
    # teacher row 3: 0.8 (5, 0) + 0.2 (0, 1) = (4.0, 0.2)
    expected_s = torch.tensor([[0., 1.],
                               [0.8 / math.sqrt(0.68), 0.2 / math.sqrt(0.68)],
                               [3., 4.],
                               [0.2 / math.sqrt(2.6), 1.6 / math.sqrt(2.6)]])
    n1, n3 = math.hypot(0.12, 0.96), math.hypot(4.0, 0.2)
    expected_t = torch.tensor([[1., 0.], [0.12 / n1, 0.96 / n1], [0., 0.5],
                               [4.0 / n3, 0.2 / n3]])
    torch.testing.assert_close(mem.student, expected_s)
    torch.testing.assert_close(mem.teacher, expected_t)
    # rows outside the batch are untouched (row 2 is not even unit-norm)
    assert torch.equal(mem.student[2], torch.tensor([3., 4.]))


def test_a_repeated_index_is_updated_once_with_its_last_occurrence():
    mem = ContrastMemory(num_samples=3, embed_dim=2, momentum=0.5)
    with torch.no_grad():
        mem.student.copy_(torch.tensor([[1., 0.], [1., 0.], [1., 0.]]))
        mem.teacher.copy_(mem.student)
    idx = torch.tensor([2, 0, 2])
    v = torch.tensor([[-1., 0.], [0., 1.], [0., 1.]])
    mem.update(idx, v, v)
    s = 1 / math.sqrt(2)
    # row 2 once, with (0, 1): 0.5 (1, 0) + 0.5 (0, 1), normalised; the
    # first occurrence (-1, 0) would have cancelled the row
    torch.testing.assert_close(mem.student,
                               torch.tensor([[s, s], [1., 0.], [s, s]]))
    torch.testing.assert_close(mem.teacher, mem.student)


def test_index_out_of_range_names_num_samples_and_the_fix():
    mem = ContrastMemory(num_samples=4, embed_dim=2, momentum=0.5)
    v = torch.ones(2, 2)
    for bad in (4, -1):
        with pytest.raises(ValueError) as err:
            mem.update(torch.tensor([0, bad]), v, v)
        msg = str(err.value)
        assert f'sample_idx {bad} is out of range' in msg
        assert 'num_samples=4' in msg and 'len(train_dataloader.dataset)' \
            in msg


def test_arguments_are_checked():
    with pytest.raises(ValueError, match='num_samples must be an int >= 2'):
        ContrastMemory(num_samples=1, embed_dim=2, momentum=0.5)
    with pytest.raises(ValueError, match=r'momentum must be in \[0, 1\)'):
        ContrastMemory(num_samples=4, embed_dim=2, momentum=1.0)


def test_banks_are_persistent_buffers():
    mem = ContrastMemory(num_samples=5, embed_dim=3, momentum=0.5)
    assert set(mem.state_dict()) == {'student', 'teacher'}
    assert list(mem.parameters()) == []
    mem.update(torch.tensor([1]), torch.ones(1, 3), -torch.ones(1, 3))
    fresh = ContrastMemory(num_samples=5, embed_dim=3, momentum=0.5)
    fresh.load_state_dict(mem.state_dict())
    assert torch.equal(fresh.student, mem.student)
    assert torch.equal(fresh.teacher, mem.teacher)

"""Projector: the neck that maps student features to the teacher's dim."""
import pytest
import torch
from mmpretrain.registry import MODELS

from mmnckd.models.necks import Projector


@pytest.mark.parametrize('mode', ['linear', 'mlp'])
def test_shapes_tuple_and_tensor(mode):
    proj = Projector(16, 24, mode=mode)
    x = torch.randn(4, 16)
    out = proj((x, x * 2))
    assert isinstance(out, tuple) and len(out) == 2
    assert all(o.shape == (4, 24) for o in out)
    single = proj(x)
    assert isinstance(single, torch.Tensor) and single.shape == (4, 24)
    proj.eval()
    assert torch.allclose(proj((x, ))[0], proj(x))


def test_structure():
    lin = Projector(8, 4, mode='linear')
    assert [type(m)
            for m in lin.proj] == [torch.nn.Linear, torch.nn.BatchNorm1d]
    mlp = Projector(8, 4, mode='mlp')
    assert [type(m) for m in mlp.proj] == [
        torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.ReLU, torch.nn.Linear,
        torch.nn.BatchNorm1d
    ]
    assert mlp.hidden_channels == 16  # max(2 * 8, 4)
    assert Projector(3, 10, mode='mlp').hidden_channels == 10
    assert Projector(
        3, 10, hidden_channels=7, mode='mlp').proj[0].out_features == 7


def test_pools_4d_and_3d_inputs():
    proj = Projector(6, 3, mode='linear').eval()
    x = torch.randn(2, 6, 5, 7)
    assert torch.allclose(proj((x, ))[0], proj(x.mean(dim=(2, 3))))
    seq = torch.randn(2, 6, 9)
    assert torch.allclose(proj(seq), proj(seq.mean(dim=2)))


def test_identity():
    proj = Projector(5, 5, mode='identity')
    x = torch.randn(3, 5)
    assert torch.equal(proj(x), x)
    assert list(proj.parameters()) == []
    with pytest.raises(ValueError, match='in_channels == out_channels'):
        Projector(5, 6, mode='identity')


def test_errors():
    with pytest.raises(ValueError) as err:
        Projector(4, 4, mode='conv')
    for m in ('linear', 'mlp', 'identity', 'conv'):
        assert m in str(err.value)
    with pytest.raises(ValueError, match='input channels'):
        Projector(4, 8)(torch.randn(2, 5))


def test_max_rank():
    assert Projector(16, 8, mode='linear').max_rank() == 8
    assert Projector(4, 8, mode='linear').max_rank() == 4
    assert Projector(4, 8, hidden_channels=6, mode='mlp').max_rank() == 6
    assert Projector(4, 8, mode='mlp').max_rank() == 8  # hidden = 8
    assert Projector(4, 4, mode='identity').max_rank() == 4


def test_max_rank_is_reached():
    """The mlp lifts 2-D inputs to a representation of rank max_rank()."""
    torch.manual_seed(0)
    proj = Projector(2, 8, hidden_channels=8, mode='mlp')
    out = proj(torch.randn(256, 2)).detach()
    rank = torch.linalg.matrix_rank(out - out.mean(0))
    assert rank == proj.max_rank() == 8
    lin = Projector(2, 8, mode='linear')
    out = lin(torch.randn(256, 2)).detach()
    assert torch.linalg.matrix_rank(out - out.mean(0)) == lin.max_rank() == 2


def test_build_from_registry_and_backward():
    proj = MODELS.build(
        dict(type='Projector', in_channels=8, out_channels=4, mode='mlp'))
    assert isinstance(proj, Projector)
    x = torch.randn(5, 8, requires_grad=True)
    proj((x, ))[0].sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize('mode', ['linear', 'mlp'])
def test_training_batch_of_one_names_batch_size_and_fix(mode):
    proj = Projector(8, 4, mode=mode).train()
    for x in (torch.randn(1, 8), (torch.randn(1,
                                              8), ), torch.randn(1, 8, 3, 3)):
        with pytest.raises(ValueError) as err:
            proj(x)
        msg = str(err.value)
        assert f"Projector(mode='{mode}') got a training batch of 1" in msg
        assert 'batch size 1' in msg
        assert 'train_dataloader.batch_size >= 2' in msg
        assert 'drop_last=False' in msg
        assert 'train_dataloader.drop_last=True' in msg
    # what is fine: 2 samples in training, 1 sample in eval mode
    assert proj(torch.randn(2, 8)).shape == (2, 4)
    assert proj.eval()(torch.randn(1, 8)).shape == (1, 4)


def test_identity_trains_on_a_batch_of_one():
    x = torch.randn(1, 5)
    assert torch.equal(Projector(5, 5, mode='identity').train()(x), x)

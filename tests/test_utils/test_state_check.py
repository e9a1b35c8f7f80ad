"""mmnckd.utils.state_check: strict key/shape comparison, non-finite
detection by name, and the weight / class-list digests."""
import pytest
import torch

from mmnckd.utils import (check_finite, check_state_matches, names_sha256,
                          non_finite_entries, strip_prefix, weights_sha256)


def _model():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_matching_state_passes_and_each_mismatch_is_listed():
    model = _model()
    state = dict(model.state_dict())
    check_state_matches(model, state, 'ckpt', 'fix')  # control
    bad = dict(state)
    bad['0.weight'] = torch.zeros(5, 3)  # shape
    del bad['1.bias']  # missing
    bad['2.weight'] = torch.zeros(1)  # unexpected
    with pytest.raises(ValueError) as err:
        check_state_matches(model, bad, 'ckpt X', 'Do Y.')
    msg = str(err.value)
    assert msg.startswith('ckpt X does not match the model (')
    assert 'missing keys: 1.bias' in msg
    assert 'unexpected keys: 2.weight' in msg
    assert ('shape mismatches: 0.weight: (5, 3) in the checkpoint, (4, 3) '
            'in the model') in msg
    assert msg.endswith('Do Y.')
    # ignored prefixes are not compared
    check_state_matches(
        model, {
            k: v
            for k, v in state.items() if k != '1.bias'
        },
        'c',
        'f',
        ignore=('1.', ))


def test_non_finite_entries_name_tensor_and_count():
    named = [('a', torch.tensor([1.0, float('nan'),
                                 float('inf')])), ('b', torch.ones(2)),
             ('c', torch.tensor([1, 2]))]
    assert non_finite_entries(named) == ['a (2 of 3 values)']
    with pytest.raises(ValueError, match=r'NaN/Inf values in: a \(2 of 3'):
        check_finite(named, 'W', 'fix')
    check_finite(named[1:], 'W', 'fix')  # control


def test_strip_prefix_drops_ddp_module_prefix():
    state = {'module.student.x': 1, 'student.y': 2, 'teacher.z': 3}
    assert strip_prefix(state, 'student.') == {'x': 1, 'y': 2}


def test_digests_follow_content_not_identity():
    a = _model().state_dict()
    b = {k: v.clone() for k, v in a.items()}
    assert weights_sha256(a) == weights_sha256(b)
    b['0.weight'][0, 0] += 1e-6
    assert weights_sha256(a) != weights_sha256(b)
    # a dtype change with equal values is another teacher too
    c = {k: v.double() if v.is_floating_point() else v for k, v in a.items()}
    assert weights_sha256(a) != weights_sha256(c)
    assert weights_sha256(
        a, skip=('0.', )) == weights_sha256({
            k: v
            for k, v in a.items() if not k.startswith('0.')
        })
    assert names_sha256(['a', 'b']) != names_sha256(['b', 'a'])
    assert names_sha256(['ab']) != names_sha256(['a', 'b'])

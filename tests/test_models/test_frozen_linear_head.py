"""FrozenLinearClsHead: a LinearClsHead whose fc gets no gradient and keeps
the LinearClsHead checkpoint keys."""
import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.structures import DataSample

from mmnckd.models.heads import FrozenLinearClsHead


def test_fc_is_frozen_and_keys_match_a_linear_head():
    head = FrozenLinearClsHead(num_classes=3, in_channels=4)
    assert not any(p.requires_grad for p in head.parameters())
    plain = LinearClsHead(num_classes=3, in_channels=4)
    assert set(head.state_dict()) == set(plain.state_dict())
    head.load_state_dict(plain.state_dict())
    x = torch.randn(5, 4, requires_grad=True)
    torch.testing.assert_close(head((x, )), plain((x, )))
    samples = [DataSample().set_gt_label(i % 3) for i in range(5)]
    loss = head.loss((x, ), samples)['loss']
    loss.backward()
    assert head.fc.weight.grad is None and head.fc.bias.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0  # flows through

"""SimKDLoss: the MSE between the projected student map and the teacher's
last map, by hand; the teacher map pooled to the student's size; the errors
for mismatched channels and a larger student map."""
import pytest
import torch

from mmnckd.models.losses import SimKDLoss


def test_mse_over_every_element_by_hand():
    student = torch.tensor([[[[1., 2.], [3., 4.]]], [[[0., 0.], [0., 1.]]]],
                           requires_grad=True)  # (2, 1, 2, 2)
    teacher = torch.tensor([[[[1., 0.], [3., 2.]]], [[[1., 0.], [0., 0.]]]])
    # squared differences: 0 4 0 4 | 1 0 0 1 -> 10 over 8 elements
    loss = SimKDLoss(loss_weight=2.0)(student, teacher)
    assert loss.item() == pytest.approx(2.0 * 10 / 8)
    loss.backward()
    # d/dS of 2 * mean((S - T)^2) = 4 (S - T) / 8
    torch.testing.assert_close(student.grad, (student - teacher).detach() / 2)


def test_larger_teacher_map_is_average_pooled():
    student = torch.zeros(1, 2, 1, 1)
    teacher = torch.arange(8.).view(1, 2, 2, 2)  # channel means 1.5, 5.5
    loss = SimKDLoss()(student, teacher)
    assert loss.item() == pytest.approx((1.5**2 + 5.5**2) / 2)


def test_errors_name_the_setting():
    crit = SimKDLoss()
    with pytest.raises(ValueError, match="SimKDNeck's out_channels"):
        crit(torch.zeros(2, 3, 2, 2), torch.zeros(2, 4, 2, 2))
    with pytest.raises(ValueError) as err:
        crit(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 2, 2))
    assert 'model.student.neck.spatial_size=(2, 2)' in str(err.value)
    with pytest.raises(ValueError, match='loss_weight'):
        SimKDLoss(loss_weight=-1)


def test_float32_under_half_inputs():
    s = torch.ones(1, 1, 2, 2, dtype=torch.float16)
    loss = SimKDLoss()(s, torch.zeros(1, 1, 2, 2, dtype=torch.bfloat16))
    assert loss.dtype == torch.float32 and loss.item() == 1.0

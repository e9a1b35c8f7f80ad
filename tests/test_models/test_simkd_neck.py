"""SimKDNeck: SimKD's bottleneck projector (shapes, layers, parameter
count, initialisation, spatial pooling) as an mmpretrain neck."""
import math

import pytest
import torch
import torch.nn as nn

from mmnckd.models.necks import SimKDNeck


def test_shapes_map_and_pooled_output():
    neck = SimKDNeck(in_channels=16, out_channels=32)
    x = torch.randn(4, 16, 3, 3)
    s = neck.project(x)
    assert s.shape == (4, 32, 3, 3)  # the teacher's channels
    out = neck((torch.randn(4, 8, 6, 6), x))  # the last map is used
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (4, 32)
    neck.eval()
    torch.testing.assert_close(neck(x)[0], neck.project(x).mean(dim=(2, 3)))
    assert (neck.project(x) >= 0).all()  # ends with ReLU


def test_layers_and_parameter_count():
    neck = SimKDNeck(in_channels=64, out_channels=256, factor=2)
    kinds = [type(m) for m in neck.projector]
    assert kinds == [
        nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU,
        nn.Conv2d, nn.BatchNorm2d, nn.ReLU
    ]
    convs = [m for m in neck.projector if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] \
        == [(64, 128, (1, 1)), (128, 128, (3, 3)), (128, 256, (1, 1))]
    assert all(c.bias is None for c in convs)
    # 64*128 + 128*128*9 + 128*256 conv weights, 2 * (128 + 128 + 256) BN
    expected = 64 * 128 + 128 * 128 * 9 + 128 * 256 + 2 * (128 + 128 + 256)
    assert expected == 189440
    assert sum(p.numel() for p in neck.parameters()) == expected
    assert SimKDNeck(64, 256, factor=4).projector[0].out_channels == 64


def test_initialisation_kaiming_fan_out():
    torch.manual_seed(0)
    neck = SimKDNeck(in_channels=64, out_channels=256)
    neck.init_weights()
    conv = neck.projector[3]  # 128 -> 128, 3x3: fan_out = 128 * 9
    std = math.sqrt(2.0 / (128 * 9))
    assert conv.weight.std().item() == pytest.approx(std, rel=0.05)
    for bn in (neck.projector[1], neck.projector[4], neck.projector[7]):
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))


def test_spatial_size_pools_before_the_projector():
    neck = SimKDNeck(in_channels=4, out_channels=6, spatial_size=2).eval()
    x = torch.randn(2, 4, 8, 8)
    assert neck.project(x).shape == (2, 6, 2, 2)
    pooled = torch.nn.functional.adaptive_avg_pool2d(x, 2)
    plain = SimKDNeck(in_channels=4, out_channels=6).eval()
    plain.load_state_dict(neck.state_dict())
    torch.testing.assert_close(neck.project(x), plain.project(pooled))


def test_errors():
    with pytest.raises(ValueError, match=r'expects a feature map \(N, 16'):
        SimKDNeck(16, 32)(torch.randn(2, 8, 3, 3))
    with pytest.raises(ValueError, match='factor must be'):
        SimKDNeck(16, 4, factor=8)
    with pytest.raises(ValueError, match='positive'):
        SimKDNeck(0, 4)

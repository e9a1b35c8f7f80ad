"""Tests of the CIFAR-100 KD-benchmark backbones (CRD / mdistiller family).

Every backbone is wrapped as ``ImageClassifier(backbone, GAP,
LinearClsHead(100, out_channels))``, which must reproduce the parameter
count of the original CIFAR-100 model (features + 100-way linear layer).
"""
import pytest
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.models.backbones.shufflenet_v2 import InvertedResidual
from mmpretrain.registry import MODELS

import mmnckd  # noqa: F401  (registers the backbones)
from mmnckd.models.backbones import (CIFARVGG, CIFARMobileNetV2, CIFARResNet,
                                     CIFARShuffleNetV1, CIFARShuffleNetV2,
                                     CIFARWideResNet)

# name -> (backbone cfg, exact #params of the full 100-class classifier,
#          published #params in millions)
#
# Published values: the parameter column of the CIFAR-100 model zoo of the
# KD benchmark (CRD, Tian et al. ICLR 2020, github.com/HobbitLong/
# RepDistiller; mdistiller, github.com/megvii-research/mdistiller) as
# commonly tabulated, rounded to 2 decimals (in M). The exact counts were
# computed from these implementations and agree with the closed form below
# for the ResNets/WRNs. resnet14 is not part of the CRD/mdistiller tables;
# its 100-class count is 181,108 (the "0.17M" sometimes quoted is the
# 10-class count 175,258), so 0.18 is listed here.
ARCHS = {
    'resnet8': (dict(type='CIFARResNet', arch='resnet8'), 83892, 0.08),
    'resnet14': (dict(type='CIFARResNet', arch='resnet14'), 181108, 0.18),
    'resnet20': (dict(type='CIFARResNet', arch='resnet20'), 278324, 0.28),
    'resnet32': (dict(type='CIFARResNet', arch='resnet32'), 472756, 0.47),
    'resnet44': (dict(type='CIFARResNet', arch='resnet44'), 667188, 0.67),
    'resnet56': (dict(type='CIFARResNet', arch='resnet56'), 861620, 0.86),
    'resnet110': (dict(type='CIFARResNet', arch='resnet110'), 1736564, 1.74),
    'resnet8x4': (dict(type='CIFARResNet', arch='resnet8x4'), 1233540, 1.23),
    'resnet32x4': (dict(type='CIFARResNet', arch='resnet32x4'), 7433860, 7.43),
    'wrn_16_1': (dict(type='CIFARWideResNet', arch='wrn_16_1'), 180916, 0.18),
    'wrn_16_2': (dict(type='CIFARWideResNet', arch='wrn_16_2'), 703284, 0.70),
    'wrn_40_1': (dict(type='CIFARWideResNet', arch='wrn_40_1'), 569780, 0.57),
    'wrn_40_2': (dict(type='CIFARWideResNet', arch='wrn_40_2'), 2255156, 2.26),
    'vgg8': (dict(type='CIFARVGG', arch='vgg8'), 3965028, 3.96),
    'vgg13': (dict(type='CIFARVGG', arch='vgg13'), 9462180, 9.46),
    # MobileNetV2 (CRD's mobile_half: width 0.5, T=6)
    'mobilenetv2': (dict(type='CIFARMobileNetV2'), 812836, 0.81),
    'shufflev1': (dict(type='CIFARShuffleNetV1'), 949258, 0.95),
    'shufflev2': (dict(type='CIFARShuffleNetV2'), 1355528, 1.36),
}
# Not in the published tables: only pinned to the exact counts.
EXTRA = {
    'vgg11': (dict(type='CIFARVGG', arch='vgg11'), 9277284),
    'vgg16': (dict(type='CIFARVGG', arch='vgg16'), 14774436),
    'vgg19': (dict(type='CIFARVGG', arch='vgg19'), 20086692),
}


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    # The models are tiny: intra-op threads only add contention on a busy
    # CPU (a 2-thread resnet110 forward can be 100x slower than 1-thread).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def build_classifier(backbone_cfg):
    backbone = MODELS.build(backbone_cfg)  # ImageClassifier accepts modules
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=100,
                in_channels=backbone.out_channels)))


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def resnet_closed_form(depth, widths, num_classes=100):
    """#params of a CIFAR ResNet (post-act BasicBlocks, 1x1 projection)."""
    n = (depth - 2) // 6
    total = 27 * widths[0] + 2 * widths[0]
    c_in = widths[0]
    for i, c in enumerate(widths[1:]):
        stride = 1 if i == 0 else 2
        total += 9 * c_in * c + 9 * c * c + 4 * c
        if stride != 1 or c_in != c:
            total += c_in * c + 2 * c
        total += (n - 1) * (18 * c * c + 4 * c)
        c_in = c
    return total + widths[-1] * num_classes + num_classes


def wrn_closed_form(depth, k, num_classes=100):
    """#params of WRN-d-k (pre-act blocks, 1x1 projection, final BN)."""
    n = (depth - 4) // 6
    total = 27 * 16
    c_in = 16
    for c in (16 * k, 32 * k, 64 * k):
        total += 2 * c_in + 9 * c_in * c + 2 * c + 9 * c * c
        if c_in != c:
            total += c_in * c
        total += (n - 1) * (4 * c + 18 * c * c)
        c_in = c
    return total + 2 * c_in + c_in * num_classes + num_classes


@pytest.mark.parametrize('name', list(ARCHS))
def test_param_count_and_forward(name):
    cfg, exact, published_m = ARCHS[name]
    model = build_classifier(cfg)
    n = num_params(model)
    assert n == exact
    # Published values are rounded to 2 decimals (in M): allow 1% or
    # half a unit of the last published digit, whichever is larger.
    assert abs(n / 1e6 - published_m) <= max(0.01 * published_m, 0.005), \
        f'{name}: {n} vs published {published_m}M'

    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x, mode='tensor')
        pre_logits = model.extract_feat(x, stage='neck')
    assert logits.shape == (2, 100)
    assert pre_logits[-1].shape == (2, model.backbone.out_channels)


@pytest.mark.parametrize('name', list(EXTRA))
def test_param_count_extra(name):
    cfg, exact = EXTRA[name]
    assert num_params(build_classifier(cfg)) == exact


def test_closed_form_counts():
    for arch, setting in CIFARResNet.arch_settings.items():
        expected = resnet_closed_form(setting['depth'], setting['widths'])
        assert expected == ARCHS[arch][1], arch
    for arch, setting in CIFARWideResNet.arch_settings.items():
        expected = wrn_closed_form(setting['depth'], setting['widen_factor'])
        assert expected == ARCHS[arch][1], arch


# backbone cfg -> expected (channels, spatial size) of every output index
# for a 32x32 input
MULTI_OUT = [
    (dict(type='CIFARResNet', arch='resnet8x4',
          out_indices=(0, 1, 2)), [(64, 32), (128, 16), (256, 8)]),
    (dict(type='CIFARResNet', arch='resnet20',
          out_indices=(0, 1, 2)), [(16, 32), (32, 16), (64, 8)]),
    (dict(type='CIFARWideResNet', arch='wrn_16_2',
          out_indices=(0, 1, 2)), [(32, 32), (64, 16), (128, 8)]),
    (dict(type='CIFARVGG',
          arch='vgg8', out_indices=(0, 1, 2, 3, 4)), [(64, 32), (128, 16),
                                                      (256, 8), (512, 4),
                                                      (512, 4)]),
    (dict(type='CIFARMobileNetV2', out_indices=tuple(range(8))), [(8, 16),
                                                                  (12, 16),
                                                                  (16, 8),
                                                                  (32, 4),
                                                                  (48, 4),
                                                                  (80, 2),
                                                                  (160, 2),
                                                                  (1280, 2)]),
    (dict(type='CIFARShuffleNetV1',
          out_indices=(0, 1, 2)), [(240, 16), (480, 8), (960, 4)]),
    (dict(type='CIFARShuffleNetV2', out_indices=(0, 1, 2, 3)), [(116, 16),
                                                                (232, 8),
                                                                (464, 4),
                                                                (1024, 4)]),
]


@pytest.mark.parametrize(
    'cfg,expected',
    MULTI_OUT,
    ids=[c['type'] + str(i) for i, (c, _) in enumerate(MULTI_OUT)])
def test_out_indices(cfg, expected):
    backbone = MODELS.build(cfg).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(2, 3, 32, 32))
    assert isinstance(outs, tuple) and len(outs) == len(expected)
    for out, (c, s) in zip(outs, expected):
        assert out.shape == (2, c, s, s)
    assert backbone.out_channels == expected[-1][0]

    # default: the last stage only; negative indices count from the end
    default = MODELS.build(
        dict(
            type=cfg['type'],
            **{
                k: v
                for k, v in cfg.items() if k not in ('type', 'out_indices')
            }))
    last = MODELS.build(dict(cfg, out_indices=-1))
    assert default.out_indices == last.out_indices == (len(expected) - 1, )


def test_invalid_args():
    with pytest.raises(KeyError):
        CIFARResNet(arch='resnet9')
    with pytest.raises(ValueError):
        CIFARResNet(arch='resnet8', out_indices=(3, ))
    with pytest.raises(ValueError):
        CIFARWideResNet(arch=dict(depth=15, widen_factor=1))
    with pytest.raises(ValueError):
        CIFARVGG(arch='vgg8', frozen_stages=6)


@pytest.mark.parametrize('build,match', [
    (lambda: CIFARResNet(arch='resnet9'), r"Unknown arch 'resnet9'.*resnet8"),
    (lambda: CIFARWideResNet(arch='wrn_28_10'),
     r"Unknown arch 'wrn_28_10'.*wrn_16_1"),
    (lambda: CIFARVGG(arch='vgg9'), r"Unknown arch 'vgg9'.*vgg11"),
    (lambda: CIFARShuffleNetV2(widen_factor=3.0),
     r'widen_factor must be one of \[0.5, 1.0, 1.5, 2.0\]'),
])
def test_unknown_arch_names_list_the_choices(build, match):
    with pytest.raises(KeyError, match=match):
        build()


def test_arch_dict_without_depth():
    with pytest.raises(TypeError, match='"depth"'):
        CIFARResNet(arch=dict(widths=(16, 16, 32, 64)))
    with pytest.raises(TypeError, match='"depth"'):
        CIFARWideResNet(arch=dict(widen_factor=2))


# (backbone, names of the stem modules, names of all stages in order)
FREEZE = [
    (lambda **kw: CIFARResNet('resnet8', **kw), ['conv1', 'bn1'],
     ['layer1', 'layer2', 'layer3']),
    (lambda **kw: CIFARWideResNet('wrn_16_1', **kw), ['conv1'],
     ['layer1', 'layer2', 'layer3']),
    (lambda **kw: CIFARVGG('vgg8', **kw), [],
     ['layer1', 'layer2', 'layer3', 'layer4', 'layer5']),
    (lambda **kw: CIFARMobileNetV2(**kw), ['conv1'],
     [f'layer{i}' for i in range(1, 8)] + ['conv2']),
    (lambda **kw: CIFARShuffleNetV1(num_blocks=(1, 1, 1), **kw), ['conv1'],
     ['layer1', 'layer2', 'layer3']),
    (lambda **kw: CIFARShuffleNetV2(**kw), ['conv1'],
     ['layer1', 'layer2', 'layer3', 'conv2']),
]


@pytest.mark.parametrize(
    'builder,stem,stages', FREEZE, ids=[str(i) for i in range(len(FREEZE))])
def test_frozen_stages(builder, stem, stages):
    frozen_stages = 2
    model = builder(frozen_stages=frozen_stages)
    model.train()
    frozen = stem + stages[:frozen_stages]
    for name in frozen:
        m = getattr(model, name)
        assert all(not p.requires_grad for p in m.parameters()), name
        assert all(not mod.training for mod in m.modules()), name
    for name in stages[frozen_stages:]:
        m = getattr(model, name)
        assert all(p.requires_grad for p in m.parameters()), name
        assert all(mod.training for mod in m.modules()), name
    if isinstance(model, CIFARWideResNet):  # final BN belongs to stage 2
        assert model.bn_final.training and model.bn_final.weight.requires_grad
    # the frozen part receives no gradient, the rest does
    out = model(torch.randn(2, 3, 32, 32))[-1]
    out.sum().backward()
    for name in frozen:
        assert all(p.grad is None for p in getattr(model, name).parameters())
    assert any(
        p.grad is not None for p in getattr(model, stages[-1]).parameters())

    # -1 freezes nothing
    model = builder(frozen_stages=-1).train()
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_all_stages_wrn_includes_final_bn():
    model = CIFARWideResNet('wrn_16_1', frozen_stages=3).train()
    assert all(not p.requires_grad for p in model.parameters())
    assert not model.bn_final.training


@pytest.mark.parametrize(
    'builder,stem,stages', FREEZE, ids=[str(i) for i in range(len(FREEZE))])
def test_norm_eval(builder, stem, stages):
    model = builder(norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    assert all(p.requires_grad for p in model.parameters())
    model = builder(norm_eval=False).train()
    assert all(m.training for m in model.modules()
               if isinstance(m, _BatchNorm))


def test_init_weights_and_in_channels():
    model = CIFARResNet('resnet8', in_channels=1)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.weight.data.fill_(0.5)
    model.init_weights()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert all(
        torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)
    # Kaiming fan_out (normal): std = sqrt(2 / (out_channels * k * k))
    w = model.layer3[0].conv2.weight
    assert abs(w.std().item() - (2 / (64 * 9))**0.5) < 0.01
    assert model(torch.randn(2, 1, 32, 32))[0].shape == (2, 64, 8, 8)


def test_vgg_pool_before_last():
    model = CIFARVGG('vgg8', out_indices=(3, 4)).eval()
    with torch.no_grad():
        outs32 = model(torch.randn(1, 3, 32, 32))
        outs64 = model(torch.randn(1, 3, 64, 64))
    # CRD: the 4th max-pool is only applied to 64x64 inputs
    assert [o.shape[-1] for o in outs32] == [4, 4]
    assert [o.shape[-1] for o in outs64] == [8, 4]
    forced = CIFARVGG('vgg8', pool_before_last=True).eval()
    with torch.no_grad():
        assert forced(torch.randn(1, 3, 32, 32))[0].shape == (1, 512, 2, 2)


def test_shufflenet_v1_first_unit_ungrouped():
    model = CIFARShuffleNetV1()
    first = model.layer1[0]
    assert first.conv1.conv.groups == 1 and first.conv1.conv.in_channels == 24
    assert model.layer1[1].conv1.conv.groups == 3
    assert model.layer2[0].conv1.conv.groups == 3


# one small model of each backbone
SMALL = {
    'resnet': lambda **kw: CIFARResNet('resnet8', **kw),
    'wrn': lambda **kw: CIFARWideResNet('wrn_16_1', **kw),
    'vgg': lambda **kw: CIFARVGG('vgg8', **kw),
    'mobilenetv2': lambda **kw: CIFARMobileNetV2(**kw),
    'shufflev1': lambda **kw: CIFARShuffleNetV1(num_blocks=(1, 1, 1), **kw),
    'shufflev2': lambda **kw: CIFARShuffleNetV2(widen_factor=0.5, **kw),
}


@pytest.mark.parametrize('name', list(SMALL))
def test_openmmlab_blocks(name):
    """The conv - norm [- act] layers are mmcv ConvModules (or mmpretrain's
    ResNet BasicBlock, whose layers carry the ResNet names)."""
    model = SMALL[name]()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    in_conv_module = {
        id(m.conv)
        for m in model.modules() if isinstance(m, ConvModule)
    }
    if name == 'resnet':
        assert any(isinstance(m, BasicBlock) for m in model.modules())
        assert not in_conv_module
    elif name == 'wrn':
        # only the stem conv, the 2nd conv of each block and the projection
        # shortcuts are plain convs (no norm after them)
        assert len(in_conv_module) == 6 and len(convs) == 6 + 1 + 6 + 2
    else:  # every conv is followed by a norm
        assert len(in_conv_module) == len(convs)
    if name == 'shufflev2':
        assert sum(isinstance(m, InvertedResidual)
                   for m in model.modules()) == 3 + 3 + 7 + 3


@pytest.mark.parametrize('name', list(SMALL))
def test_norm_and_act_cfg(name):
    """norm_cfg and act_cfg reach every norm / activation layer."""
    default = SMALL[name]()
    model = SMALL[name](
        norm_cfg=dict(type='GN', num_groups=2), act_cfg=dict(type='ReLU6'))
    n_bn = sum(isinstance(m, _BatchNorm) for m in default.modules())
    n_relu = sum(type(m) is nn.ReLU for m in default.modules())
    assert n_bn and n_relu
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == n_bn
    assert not any(type(m) is nn.ReLU for m in model.modules())
    assert sum(isinstance(m, nn.ReLU6) for m in model.modules()) == n_relu
    # GN has the parameters of BN: same count
    assert num_params(model) == num_params(default)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))[-1]
    assert out.shape[1] == model.out_channels and torch.isfinite(out).all()


@pytest.mark.parametrize('name', list(SMALL))
def test_init_weights_conv_modules(name):
    """ConvModule's own init keeps the Kaiming fan-out / constant scheme."""
    model = SMALL[name]()
    for m in model.modules():
        if isinstance(m, (_BatchNorm, nn.Conv2d)):
            m.weight.data.fill_(0.5)
    model.init_weights()
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        elif isinstance(m, nn.Conv2d):
            if m.bias is not None:
                assert torch.all(m.bias == 0)
            # torch's fan_out: out_channels * kernel area (also when grouped)
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            if m.weight.numel() >= 4096:
                std = m.weight.std().item()
                assert abs(std / (2 / fan_out)**0.5 - 1) < 0.1, (m, std)


def test_state_dict_keys():
    """ResNet keeps the keys of mmpretrain's ResNet_CIFAR; ConvModules name
    their parts conv / bn."""
    keys = set(CIFARResNet('resnet8').state_dict())
    assert {
        'conv1.weight', 'bn1.weight', 'layer1.0.conv1.weight',
        'layer1.0.bn2.weight', 'layer2.0.downsample.0.weight',
        'layer2.0.downsample.1.weight'
    } <= keys
    keys = set(CIFARWideResNet('wrn_16_1').state_dict())
    assert {
        'conv1.weight', 'layer1.0.bn1.weight', 'layer1.0.conv1.conv.weight',
        'layer1.0.conv1.bn.weight', 'layer1.0.conv2.weight',
        'layer2.0.shortcut.weight', 'bn_final.weight'
    } <= keys
    keys = set(CIFARVGG('vgg8').state_dict())
    assert {
        'layer1.0.conv.weight', 'layer1.0.conv.bias', 'layer1.0.bn.weight'
    } <= keys
    keys = set(CIFARMobileNetV2().state_dict())
    assert {
        'conv1.conv.weight', 'layer1.0.conv.0.conv.weight',
        'layer1.0.conv.2.bn.weight', 'conv2.conv.weight'
    } <= keys
    keys = set(CIFARShuffleNetV2().state_dict())
    assert {
        'conv1.conv.weight', 'layer1.0.branch1.0.conv.weight',
        'layer1.1.branch2.2.bn.weight', 'conv2.bn.weight'
    } <= keys

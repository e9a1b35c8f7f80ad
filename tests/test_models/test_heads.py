"""ETFHead: hand-computed logits, the fixed ETF weight, the scale, low
precision, zero features and its errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from small_models import K, all_losses_distiller, classifier

from mmnckd.models.heads import ETFHead
from mmnckd.models.necks import Projector  # noqa: F401 (registers the neck)
from mmnckd.models.utils import etf_gram, simplex_etf


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from torch's seed 0: test_scale_gradient draws its
    features from the global RNG, and the logits of a simplex ETF head sum
    to 0 in exact arithmetic (the ETF rows sum to 0), so its non-zero
    gradient is float round-off that about 1 in 18 RNG states lacks. In
    test_etf_head.py the seed came from test_nearest_simplex_etf (now in
    test_models/test_utils/test_etf.py)."""
    torch.manual_seed(0)


def _is_etf(E, atol=1e-5):
    K = E.size(0)
    norms = E.norm(dim=1)
    gram = E @ E.t()
    return (torch.allclose(norms, torch.ones(K), atol=atol)
            and torch.allclose(gram, etf_gram(K), atol=atol))


def test_head_logits_hand_computed_two_classes():
    head = ETFHead(
        num_classes=2, in_channels=2, scale=3.0, learnable_scale=False)
    head.set_weight(torch.tensor([[2., 0.], [-1., 0.]]))  # rows normalised
    x = torch.tensor([[1., 1.], [0., -5.], [-4., 0.]])
    c = 1 / math.sqrt(2)
    expected = 3.0 * torch.tensor([[c, -c], [0., 0.], [-1., 1.]])
    assert torch.allclose(head((x, )), expected, atol=1e-6)


def test_head_logits_hand_computed_three_classes():
    head = ETFHead(
        num_classes=3, in_channels=2, scale=2.0, learnable_scale=False)
    # the 2-D simplex ETF: three unit vectors 120 degrees apart
    angles = torch.tensor([90., 210., 330.]) * math.pi / 180
    W = torch.stack([angles.cos(), angles.sin()], dim=1)
    head.set_weight(W)
    assert _is_etf(head.weight)
    x = torch.tensor([[0., 2.], [1., 0.]])
    expected = 2.0 * torch.tensor(
        [[1., -0.5, -0.5],
         [0., math.cos(210 * math.pi / 180),
          math.cos(330 * math.pi / 180)]])
    assert torch.allclose(head((x, )), expected, atol=1e-6)
    assert torch.allclose(head.scale, torch.tensor(2.0))


def test_default_scale():
    assert math.isclose(
        ETFHead(10, 9).scale.item(), math.sqrt(2) * math.log(9), rel_tol=1e-6)
    s2 = ETFHead(2, 4).scale.item()
    assert math.isfinite(s2) and s2 > 0


def test_weight_is_buffer_and_checkpointed():
    head = ETFHead(num_classes=5, in_channels=8, seed=0, learnable_scale=True)
    assert torch.allclose(head.weight, simplex_etf(5, 8, seed=0))
    assert 'weight' in head.state_dict()
    assert all(p is not head.weight for p in head.parameters())
    assert [n for n, _ in head.named_parameters()] == ['log_scale']
    assert not head.weight.requires_grad

    new = ETFHead(num_classes=5, in_channels=8, seed=7)
    assert not torch.allclose(new.weight, head.weight)
    new.load_state_dict(head.state_dict())
    assert torch.equal(new.weight, head.weight)

    fixed = ETFHead(num_classes=5, in_channels=8)  # the default: fixed
    assert not fixed.learnable_scale
    assert list(fixed.parameters()) == []
    assert {'weight', 'log_scale'} <= set(fixed.state_dict())


def test_in_channels_too_small():
    with pytest.raises(ValueError) as err:
        ETFHead(num_classes=10, in_channels=4)
    msg = str(err.value)
    for part in ('in_channels=4', 'num_classes=10', 'K-1', 'Projector',
                 "mode='mlp'", 'out_channels=9'):
        assert part in msg


def test_etf_head_too_narrow_points_to_a_projector_neck():
    with pytest.raises(ValueError) as err:
        ETFHead(num_classes=K, in_channels=K - 2)
    msg = str(err.value)
    assert 'in_channels=4 < num_classes - 1 = 5' in msg
    assert "neck=dict(type='Projector'" in msg
    # in a distiller config too, at build time
    narrow = classifier(
        2,
        head=dict(type='ETFHead', num_classes=K, in_channels=4),
        neck=dict(type='Projector', in_channels=16, out_channels=4))
    with pytest.raises(ValueError, match='in_channels=4 < num_classes - 1'):
        all_losses_distiller(student=narrow, head_weights='canonical')


def test_set_weight():
    head = ETFHead(num_classes=4, in_channels=6)
    W = torch.randn(4, 6) * 5
    head.set_weight(W)
    assert torch.allclose(head.weight, F.normalize(W, dim=1), atol=1e-6)
    with pytest.raises(ValueError, match=r'\(4, 6\)'):
        head.set_weight(torch.randn(4, 5))
    with pytest.raises(ValueError):
        head.set_weight(torch.randn(24))


def test_scale_gradient():
    x = (torch.randn(4, 6), )
    learn = ETFHead(num_classes=3, in_channels=6, learnable_scale=True)
    learn(x).sum().backward()
    assert learn.log_scale.grad is not None and learn.log_scale.grad != 0
    fixed = ETFHead(num_classes=3, in_channels=6, learnable_scale=False)
    out = fixed(x)
    assert not out.requires_grad
    assert not fixed.log_scale.requires_grad


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_under_autocast(dtype):
    head = ETFHead(num_classes=4, in_channels=8)
    x = (torch.randn(5, 8).to(dtype), )
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        out = head(x)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    ref = head((x[0].float(), ))
    assert torch.allclose(out, ref)


def test_zero_features_finite():
    head = ETFHead(num_classes=4, in_channels=8)
    x = torch.zeros(3, 8, requires_grad=True)
    out = head((x, ))
    assert torch.isfinite(out).all() and torch.equal(out, torch.zeros(3, 4))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def test_loss_and_predict():
    head = ETFHead(num_classes=4, in_channels=8, topk=(1, 2), cal_acc=True)
    feats = (torch.randn(6, 8), )
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    losses = head.loss(feats, _samples(labels))
    assert torch.isfinite(losses['loss'])
    assert 'accuracy_top-1' in losses and 'accuracy_top-2' in losses
    preds = head.predict(feats, _samples(labels))
    assert len(preds) == 6
    assert preds[0].pred_score.shape == (4, )
    assert torch.allclose(
        torch.stack([p.pred_score for p in preds]).sum(1), torch.ones(6))
    assert preds[0].gt_label.item() == 0
    # soft labels (batch augmentations) are inherited from ClsHead
    soft = [
        DataSample().set_gt_score(torch.full((4, ), 0.25)) for _ in range(6)
    ]
    soft_head = ETFHead(num_classes=4, in_channels=8)
    assert torch.isfinite(soft_head.loss(feats, soft)['loss'])


def test_training_reduces_loss():
    torch.manual_seed(0)
    K, d_in, d = 4, 10, 6
    centres = torch.randn(K, d_in) * 3
    labels = torch.arange(K).repeat(16)
    data = centres[labels] + 0.3 * torch.randn(len(labels), d_in)
    body = torch.nn.Linear(d_in, d)
    head = ETFHead(num_classes=K, in_channels=d)
    opt = torch.optim.SGD(
        list(body.parameters()) + list(head.parameters()), lr=0.5)
    samples = _samples(labels)
    losses = []
    for _ in range(30):
        loss = head.loss((body(data), ), samples)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # the fixed weight did not move
    assert torch.allclose(head.weight, simplex_etf(K, d, seed=0))


def test_image_classifier_with_projector_and_etf_head():
    torch.manual_seed(0)
    K = 5
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='LeNet5', num_classes=-1),  # N x 120 x 1 x 1
            neck=dict(
                type='Projector',
                in_channels=120,
                out_channels=K - 1,
                hidden_channels=32,
                mode='mlp'),
            head=dict(type='ETFHead', num_classes=K, in_channels=K - 1)))
    inputs = torch.randn(4, 1, 32, 32)
    samples = _samples([0, 1, 2, 3])
    losses = model(inputs, samples, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    model.eval()
    preds = model(inputs, _samples([0, 1, 2, 3]), mode='predict')
    assert len(preds) == 4 and preds[0].pred_score.shape == (K, )
    feats = model.extract_feat(inputs, stage='neck')
    assert feats[-1].shape == (4, K - 1)


@pytest.mark.parametrize('num_classes,peak', [(3, 0.9), (10, 0.99),
                                              (242, 0.9)])
def test_peak_scale_reaches_the_peak_on_an_etf(num_classes, peak):
    """A feature on its own vertex of the head's simplex ETF gets softmax
    probability exactly ``peak`` at the peak scale."""
    from mmnckd.models.heads import peak_etf_scale
    head = ETFHead(
        num_classes=num_classes, in_channels=num_classes + 2, peak=peak)
    scale = peak_etf_scale(num_classes, peak)
    assert head.log_scale.exp().item() == pytest.approx(scale, rel=1e-6)
    probs = head(tuple([head.weight.clone()])).softmax(dim=1)
    torch.testing.assert_close(
        probs.diagonal(),
        torch.full((num_classes, ), peak),
        rtol=1e-5,
        atol=1e-5)
    # hand value: K = 10, peak 0.99 -> 0.9 * ln(9 * 99) = 6.1117
    assert peak_etf_scale(10, 0.99) == pytest.approx(0.9 * math.log(891))
    # an explicit scale wins; a peak at or below chance is refused
    assert ETFHead(
        num_classes, num_classes, scale=2.0,
        peak=peak).log_scale.exp().item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match='not above chance'):
        peak_etf_scale(num_classes, 1.0 / num_classes)

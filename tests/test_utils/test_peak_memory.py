import torch

from mmnckd.utils.peak_memory import TensorMemoryTracker


def test_counts_tracked_and_new_storages_once():
    layer = torch.nn.Linear(100, 50)
    x = torch.randn(8, 100)
    with TensorMemoryTracker().track(layer, x) as mem:
        view = x[:4]  # a view: same storage, not counted again
        del view
    assert mem.current == mem.peak == (100 * 50 + 50 + 8 * 100) * 4


def test_peak_and_frees():
    with TensorMemoryTracker() as mem:
        a = torch.empty(1000, dtype=torch.float32)  # 4000 B
        b = torch.empty(1000, dtype=torch.float64)  # 8000 B
        del a
        c = torch.empty(250, dtype=torch.float32)  # 1000 B
    assert mem.peak == 12000
    assert mem.current == 9000
    del b, c
    assert mem.current == 0


def test_training_step_counts_grads_and_optimizer_state():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 64, bias=False)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(16, 64)
    weights = 64 * 64 * 4
    layer(x).sum().backward()
    opt.step()
    opt.zero_grad()  # momentum buffer exists, grads are None
    with TensorMemoryTracker().track(layer, opt, x) as mem:
        start = mem.current
        layer(x).square().sum().backward()
        opt.step()
    assert start == 2 * weights + 16 * 64 * 4
    # the gradient (one more weight-sized tensor) and the activations
    assert mem.peak >= start + weights + 16 * 64 * 4
    assert mem.peak < start + 3 * weights

"""What NCKD costs next to KD: step time, peak memory, prototype pass and NC
losses.

    python .dev_scripts/benchmark/cost.py [--preset omniglot|imagenet]
        [--sections steps proto losses] [--steps 10] [--rounds 3]
        [--device cpu|cuda] [--out cost.json]

In one process:

* **steps**: the same student trained alone, with a hand-written PyTorch
  KD step (``kd_plain``: the reference for the distiller's own cost), with
  KD, with NCKD (the
  default: NC1 + NC2 + NC3 head + KD in cosine space) and with NCKD without
  its KD term (no teacher forward per step), and (Omniglot preset) with the
  plug-in form on KD, CRD, CRD + NCKD, SimKD and SimKD + NCKD -- the
  preset's configs; the
  student alone is the KD config's ``model.student`` -- same
  teacher, batch and input size (random images and labels,
  random teacher weights and prototypes: the cost does not depend on them).
  One step is ``model.train_step`` with the config's optimizer wrapper, as in
  ``tools/train.py``. The methods are timed in interleaved rounds of
  ``--steps`` steps (after 2 warm-up steps each) and the median round is
  reported. Peak memory is the peak of the tensors alive during one step
  (parameters, gradients, optimizer state, activations, temporaries):
  ``torch.cuda.max_memory_allocated`` on CUDA,
  ``mmnckd.utils.peak_memory.TensorMemoryTracker`` on CPU.
* **proto**: ``TeacherPrototypeHook.compute`` (the one-off prototype pass)
  against a plain teacher inference epoch (``test_step`` of the teacher
  classifier over the same loader: the train set read with the test
  pipeline), both including the dataloader start, interleaved, median of
  ``--rounds``. Needs the preset's training data on disk.
* **losses**: NC1 + NC2 (``PrototypeAlignLoss`` + ``ETFStructureLoss``,
  forward and backward, memory filled) alone for K in {10, 100, 1000} and
  d in {256, 2048} at the ImageNet batch (32), next to one R50 -> MBV2 step
  (KD and NCKD) on 224 x 224 input.
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import time
import types

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

import mmnckd  # noqa: E402,F401  (registers the mmnckd modules)
from mmnckd.engine import TeacherPrototypeHook  # noqa: E402
from mmnckd.models.losses import ETFStructureLoss  # noqa: E402
from mmnckd.models.losses import PrototypeAlignLoss  # noqa: E402
from mmnckd.utils.peak_memory import TensorMemoryTracker  # noqa: E402

# method -> config; 'student' is the KD config's student, 'kd_plain' a
# hand-written PyTorch KD step on the KD config's student and teacher
PRESETS = dict(
    omniglot=dict(
        kd='configs/kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py',
        nckd='configs/nckd/nckd_resnet18w32_resnet18w8_1xb64_omniglot.py',
        nckd_no_kd='configs/nckd/'
        'nckd_resnet18w32_resnet18w8_1xb64-no-kd_omniglot.py',
        plugin_kd='configs/nckd/'
        'nckd_resnet18w32_resnet18w8_1xb64-plugin-kd_omniglot.py',
        crd='configs/crd/crd_resnet18w32_resnet18w8_1xb64_omniglot.py',
        crd_nckd='configs/nckd/'
        'nckd_resnet18w32_resnet18w8_1xb64-crd_omniglot.py',
        simkd='configs/simkd/simkd_resnet18w32_resnet18w8_1xb64_omniglot.py',
        simkd_nckd='configs/nckd/'
        'nckd_resnet18w32_resnet18w8_1xb64-simkd_omniglot.py',
        input=(1, 28, 28)),
    imagenet=dict(
        kd='configs/kd/kd_resnet50_mobilenetv2_8xb32_in1k.py',
        nckd='configs/nckd/nckd_resnet50_mobilenetv2_8xb32_in1k.py',
        nckd_no_kd='configs/nckd/'
        'nckd_resnet50_mobilenetv2_8xb32-no-kd_in1k.py',
        input=(3, 224, 224)),
)
METHODS = ('student', 'kd_plain', 'kd', 'nckd', 'nckd_no_kd', 'plugin_kd',
           'crd', 'crd_nckd', 'simkd', 'simkd_nckd')


def load_cfg(path):
    return Config.fromfile(osp.join(REPO, path))


def model_cfg(preset, method):
    """The model config of one method, with the config's preprocessor."""
    cfg = load_cfg(preset['kd' if method in ('student',
                                             'kd_plain') else method])
    model = copy.deepcopy(cfg.model)
    if method == 'student':
        model = copy.deepcopy(cfg.model.student)
    model.pop('teacher_ckpt', None)  # random teacher: the cost is the same
    model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    return cfg, model


class PlainKD(torch.nn.Module):
    """A hand-written KD training step, the reference for the distiller:
    ``w_ce * CE(s, y) + w_kd * tau^2 * KL(softmax(t / tau) || softmax(s /
    tau))`` with the KD config's student, teacher, weights and temperature,
    and plain ``torch.optim.SGD`` on the student."""

    def __init__(self, mcfg, optim_cfg):
        super().__init__()
        from mmnckd.models.distillers.single_teacher_distiller import \
            resolve_model_cfg
        self.student = MODELS.build(resolve_model_cfg(mcfg.student, 's'))
        self.teacher = MODELS.build(resolve_model_cfg(mcfg.teacher, 't'))
        self.teacher.requires_grad_(False).eval()
        self.preprocess = MODELS.build(
            dict(type='ClsDataPreprocessor', **mcfg.data_preprocessor))
        kd = mcfg.distill_losses.loss_kd
        self.tau, self.w_kd = kd.get('tau', 4.0), kd.get('loss_weight', 1.0)
        self.w_ce = self.student.head.loss_module.loss_weight
        opt = dict(optim_cfg.optimizer)
        opt.pop('type')
        self.optimizer = torch.optim.SGD(self.student.parameters(), **opt)

    def train_step(self, data, optim=None):
        data = self.preprocess(data, True)
        x = data['inputs']
        y = torch.cat([s.gt_label for s in data['data_samples']])
        with torch.no_grad():
            t = self.teacher(x, mode='tensor')
        s = self.student(x, mode='tensor')
        kl = torch.nn.functional.kl_div(
            torch.log_softmax(s / self.tau, 1),
            torch.softmax(t / self.tau, 1),
            reduction='batchmean')
        loss = self.w_ce * torch.nn.functional.cross_entropy(s, y) + \
            self.w_kd * self.tau**2 * kl
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return dict(loss=loss.detach())


def build(preset, method, device):
    """A model with random weights (and prototypes) and its optim wrapper."""
    torch.manual_seed(0)
    cfg, mcfg = model_cfg(preset, method)
    if method == 'kd_plain':
        model = PlainKD(mcfg, cfg.optim_wrapper).to(device)
        return cfg, model, model
    model = MODELS.build(mcfg).to(device)
    if getattr(model, 'needs_prototypes', False):
        K, d = model.num_classes, model.teacher_feat_dim
        model.set_prototypes(torch.randn(K, d, device=device))
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    return cfg, model, optim


def batch(cfg, shape, num_classes, device, seed=0):
    """A training batch as the dataloader yields it (uint8 images)."""
    gen = torch.Generator().manual_seed(seed)
    n = cfg.train_dataloader.batch_size
    inputs = torch.randint(
        0, 256, (n, *shape), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, num_classes, (n, ), generator=gen)
    # sample_idx: CRD's memory rows (the first n samples of the training set)
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(int(y))
        for i, y in enumerate(labels)
    ]
    return dict(inputs=inputs.to(device), data_samples=samples)


def num_classes(model):
    return getattr(model, 'num_classes', None) or getattr(
        model, 'student', model).head.num_classes


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_steps(model, optim, data, steps, device):
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_step(data, optim)
    sync(device)
    return (time.perf_counter() - start) / steps


def peak_step_memory(model, optim, data, device):
    """Peak bytes of the tensors alive during one training step."""
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        model.train_step(data, optim)
        return torch.cuda.max_memory_allocated(device)
    with TensorMemoryTracker().track(model, optim.optimizer, data) as mem:
        model.train_step(data, optim)
    return mem.peak


def bench_steps(preset, methods, steps, rounds, device, log):
    built = {}
    for m in methods:
        cfg, model, optim = build(preset, m, device)
        model.train()
        data = batch(cfg, preset['input'], num_classes(model), device)
        for _ in range(2):  # warm-up (allocator, optimizer state)
            model.train_step(data, optim)
        built[m] = (model, optim, data)
        log(f'built {m}: {type(model).__name__}, batch '
            f'{len(data["data_samples"])} x {tuple(preset["input"])}')
    times = {m: [] for m in methods}
    for r in range(rounds):
        for m in methods:
            times[m].append(time_steps(*built[m], steps, device))
        log(f'round {r + 1}/{rounds}: ' +
            ', '.join(f'{m} {times[m][-1] * 1e3:.1f} ms' for m in methods))
    result = {}
    for m in methods:
        model, optim, data = built[m]
        result[m] = dict(
            step_s=statistics.median(times[m]),
            step_s_rounds=times[m],
            peak_bytes=int(peak_step_memory(model, optim, data, device)))
    del built
    return result


def bench_proto(preset, rounds, device, log):
    """Prototype pass vs a plain teacher inference epoch, same loader."""
    cfg, model, _ = build(preset, 'nckd', device)
    model.eval()
    hook = TeacherPrototypeHook(progress=False, save_to=None)
    runner = types.SimpleNamespace(
        cfg=cfg,
        seed=0,
        logger=MMLogger.get_current_instance(),
        build_dataloader=Runner.build_dataloader,
        train_dataloader=None)
    loader_cfg = hook._dataloader_cfg(runner)
    teacher = model.teacher
    teacher.data_preprocessor = model.data_preprocessor

    def prototype_pass():
        hook.compute(runner, model)

    @torch.no_grad()
    def plain_inference():
        for data in Runner.build_dataloader(copy.deepcopy(loader_cfg), seed=0):
            teacher.test_step(data)

    try:  # skip without the data; also warms the file cache for round 1
        Runner.build_dataloader(copy.deepcopy(loader_cfg), seed=0)
    except (FileNotFoundError, OSError) as e:
        log(f'proto: skipped, the training data is not here ({e})')
        return None
    times = dict(prototype_pass=[], teacher_inference=[])
    for r in range(rounds):
        for name, fn in (('teacher_inference', plain_inference),
                         ('prototype_pass', prototype_pass)):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
        log(f'round {r + 1}/{rounds}: ' + ', '.join(f'{k} {v[-1]:.2f} s'
                                                    for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(
        seconds=med,
        rounds=times,
        ratio=med['prototype_pass'] / med['teacher_inference'])


def bench_losses(batch_size, reps, device, log):
    """NC1 + NC2 forward + backward alone, per (K, d)."""
    out = {}
    for K in (10, 100, 1000):
        for d in (256, 2048):
            torch.manual_seed(0)
            nc1 = PrototypeAlignLoss().to(device)
            nc2 = ETFStructureLoss(num_classes=K, feat_dim=d).to(device)
            protos = torch.nn.functional.normalize(
                torch.randn(K, d, device=device), dim=1)
            z = torch.randn(batch_size, d, device=device, requires_grad=True)
            labels = torch.randint(0, K, (batch_size, ), device=device)
            for _ in range(K // batch_size + 2):  # fill the NC2 memory
                nc2(z.detach(),
                    torch.randint(0, K, (batch_size, ), device=device), protos)

            def step():
                loss = nc1(z, labels, protos) + nc2(z, labels, protos)
                loss.backward()
                z.grad = None

            step()
            sync(device)
            start = time.perf_counter()
            for _ in range(reps):
                step()
            sync(device)
            out[f'K{K}_d{d}'] = (time.perf_counter() - start) / reps
            log(f'NC losses K={K} d={d}: {out[f"K{K}_d{d}"] * 1e3:.2f} ms')
    return out


def mib(n):
    return n / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', default='omniglot', choices=PRESETS)
    parser.add_argument(
        '--sections',
        nargs='+',
        default=['steps', 'proto', 'losses'],
        choices=['steps', 'proto', 'losses'])
    parser.add_argument(
        '--steps', type=int, default=10, help='steps per timed round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--loss-reps', type=int, default=20)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='write the results as JSON')
    args = parser.parse_args()
    device = torch.device(args.device)
    init_default_scope('mmpretrain')
    MMLogger.get_instance('mmnckd_cost', log_level='WARNING')

    def log(msg):
        print(msg, flush=True)

    preset = PRESETS[args.preset]
    machine = (
        torch.cuda.get_device_name(device) if device.type == 'cuda' else
        f'CPU, {torch.get_num_threads()} threads')
    results = dict(
        preset=args.preset,
        device=str(device),
        machine=machine,
        torch=torch.__version__)
    lines = [f'machine: {machine}, torch {torch.__version__}']

    if 'steps' in args.sections:
        methods = [
            m for m in METHODS if m in preset or m in ('student', 'kd_plain')
        ]
        steps = bench_steps(preset, methods, args.steps, args.rounds, device,
                            log)
        results['steps'] = steps
        kd = steps['kd']
        lines += [
            '', f'## Training step ({args.preset})', '',
            '| method | step ms | peak MiB | step / KD | memory / KD |',
            '|---|---|---|---|---|'
        ]
        for m, r in steps.items():
            lines.append(
                f'| {m} | {r["step_s"] * 1e3:.1f} | {mib(r["peak_bytes"]):.1f}'
                f' | {r["step_s"] / kd["step_s"]:.3f} | '
                f'{r["peak_bytes"] / kd["peak_bytes"]:.3f} |')

    if 'proto' in args.sections:
        proto = bench_proto(preset, args.rounds, device, log)
        results['proto'] = proto
        if proto is not None:
            s = proto['seconds']
            lines += [
                '', f'## Prototype pass ({args.preset} train set)', '',
                f'teacher inference epoch {s["teacher_inference"]:.2f} '
                f's, prototype pass {s["prototype_pass"]:.2f} s, ratio '
                f'{proto["ratio"]:.3f}'
            ]

    if 'losses' in args.sections:
        imagenet = PRESETS['imagenet']
        if args.preset == 'imagenet' and 'steps' in results:
            ref = results['steps']
        else:
            log('timing R50 -> MBV2 steps on 224 x 224 for the NC loss '
                'comparison')
            ref = bench_steps(imagenet, ('kd', 'nckd'),
                              max(args.steps // 5, 1), 1, device, log)
        batch_size = load_cfg(imagenet['kd']).train_dataloader.batch_size
        losses = bench_losses(batch_size, args.loss_reps, device, log)
        results['losses'] = dict(
            batch=batch_size,
            seconds=losses,
            r50_mbv2_step_s={m: ref[m]['step_s']
                             for m in ('kd', 'nckd')})
        lines += [
            '', f'## NC1 + NC2 losses alone (batch {batch_size}, '
            'forward + backward)', '', f'R50 -> MBV2 step on 224 x 224: KD '
            f'{ref["kd"]["step_s"]:.3f} s, NCKD '
            f'{ref["nckd"]["step_s"]:.3f} s', '',
            '| K | d | ms | % of KD step | % of NCKD step |',
            '|---|---|---|---|---|'
        ]
        for key, sec in losses.items():
            K, d = key[1:].split('_d')
            lines.append(f'| {K} | {d} | {sec * 1e3:.2f} | '
                         f'{100 * sec / ref["kd"]["step_s"]:.2f} | '
                         f'{100 * sec / ref["nckd"]["step_s"]:.2f} |')

    table = '\n'.join(lines)
    print('\n' + table)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()

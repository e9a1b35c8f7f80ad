"""Efficacy table: student alone vs KD vs NCKD (and variants), several seeds.

    python tools/benchmark/efficacy.py --dataset omniglot --seeds 0 1 2 \
        [--methods student kd nckd nckd_kd] [--work-dir work_dirs/efficacy]

Each (method, seed) trains with ``tools/train.py`` under the same schedule
(the method config's own), then the *last* checkpoint (no best-epoch
picking) is evaluated with ``tools/test.py`` and analysed for NC metrics on
the test split. The teacher is trained once (seed 0) unless its checkpoint
exists. Finished runs are reused, so an interrupted table resumes. Prints a
markdown table of top-1 mean ± std (sample std over seeds) and NC metrics,
and writes ``results.json`` and ``results.md`` in the work dir.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# method -> (config, extra --cfg-options)
NCKD = 'configs/nckd/nckd_r18w32_r18w8_omniglot.py'
# NCKD without the KD term: the base of the method options (docs/en/method.md)
NO_KD = 'configs/nckd/ablation_no_kd_r18w32_r18w8_omniglot.py'
DATASETS = {
    'omniglot': dict(
        teacher='configs/teachers/resnet18w32_omniglot.py',
        methods={
            'student': ('configs/teachers/resnet18w8_omniglot_scratch.py', []),
            'kd': ('configs/kd/kd_r18w32_r18w8_omniglot.py', []),
            'dkd': ('configs/dkd/dkd_r18w32_r18w8_omniglot.py', []),
            # the default: NC1 + NC2 + NC3 head + KD in cosine space
            'nckd': (NCKD, []),
            'nckd_no_kd': (NO_KD, []),
            # KD on the teacher's logits instead of its cosine logits
            'nckd_kd': ('configs/nckd/nckd_kd_r18w32_r18w8_omniglot.py', []),
            'nckd_dkd': (NO_KD, [
                'model.distill_losses.loss_dkd.type=DKDLoss',
                'model.distill_losses.loss_dkd.warmup_epochs=5']),
            # the method options (docs/en/method.md), one at a time on top of NCKD
            # without KD
            'nckd_nearest_etf': (NO_KD, ['model.head_weights=nearest_etf']),
            'nckd_canonical_etf': (NO_KD, ['model.head_weights=canonical']),
            'nckd_learnable_scale': (
                'configs/nckd/nckd_learnable_scale_r18w32_r18w8_omniglot.py',
                []),
            'nckd_nc2_etf': (NO_KD,
                             ['model.distill_losses.loss_nc2.target=etf']),
            'nckd_nc2_rowsum': (NO_KD, [
                'model.distill_losses.loss_nc2.reduction=row_sum']),
            'nckd_contrast': (NO_KD, [
                'model.distill_losses.loss_nc1.contrast_weight=1.0']),
            'plugin_kd': (
                'configs/nckd/nckd_plugin_kd_r18w32_r18w8_omniglot.py', []),
            'nc1_only': (
                'configs/nckd/ablation_nc1_only_r18w32_r18w8_omniglot.py', []),
            'nc2_only': (
                'configs/nckd/ablation_nc2_only_r18w32_r18w8_omniglot.py', []),
            'nc3_head_only': (
                'configs/nckd/ablation_nc3_head_only_r18w32_r18w8_omniglot.py',
                []),
        }),
}

# Fashion-MNIST at 1,000 training images per class (10k of the 60k, so that
# a table fits a CPU; the full 10k test set), same recipe for every method.
FMNIST_SUBSET = ['train_dataloader.dataset.num_per_class=1000']
DATASETS['fashion_mnist'] = dict(
    teacher='configs/teachers/resnet18w32_fashionmnist.py',
    options=FMNIST_SUBSET,
    methods={
        'student': (
            'configs/teachers/resnet18w8_fashionmnist_scratch.py', []),
        'kd': ('configs/kd/kd_r18w32_r18w8_fashionmnist.py', []),
        'dkd': ('configs/dkd/dkd_r18w32_r18w8_fashionmnist.py', []),
        'nckd': ('configs/nckd/nckd_r18w32_r18w8_fashionmnist.py', []),
        'nckd_no_kd': (
            'configs/nckd/ablation_no_kd_r18w32_r18w8_fashionmnist.py', []),
        'nckd_kd': ('configs/nckd/nckd_kd_r18w32_r18w8_fashionmnist.py', []),
        'nckd_learnable_scale': (
            'configs/nckd/ablation_no_kd_r18w32_r18w8_fashionmnist.py',
            ['model.student.head.learnable_scale=True']),
    })

# The "NC teacher" route (docs/en/method.md): the same pairs distilled from
# a teacher trained with mmnckd's ETFHead (collapsed towards an ETF by
# construction) instead of a linear head.
NC_TEACHER = 'configs/teachers/resnet18w32_etf_omniglot.py'
DATASETS['omniglot_nc_teacher'] = dict(
    teacher=NC_TEACHER,
    methods={
        name: (cfg, opts + [f'model.teacher={NC_TEACHER}'])
        for name, (cfg, opts) in DATASETS['omniglot']['methods'].items()
        if name != 'student'
    })
DATASETS['omniglot_nc_teacher']['methods']['student'] = \
    DATASETS['omniglot']['methods']['student']


def sh(cmd, log):
    os.makedirs(osp.dirname(log), exist_ok=True)
    with open(log, 'w') as f:
        proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed, see {log}')


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train(config, work_dir, options):
    """Train to the end (resuming an interrupted run); the last checkpoint."""
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        cmd.append('--resume')  # finishes the schedule; no-op when done
    if options:
        cmd += ['--cfg-options', *options]
    sh(cmd, osp.join(work_dir, 'train.out'))
    return last_checkpoint(work_dir), time.time() - start


def run_once(config, work_dir, options):
    """Train + evaluate, cached in ``result.json`` so tables resume."""
    result = osp.join(work_dir, 'result.json')
    if osp.isfile(result):
        with open(result) as f:
            return json.load(f)
    ckpt, seconds = train(config, work_dir, options)
    metrics = evaluate(config, ckpt, work_dir, [])
    metrics.update(ckpt=ckpt, train_seconds=seconds)
    with open(result, 'w') as f:
        json.dump(metrics, f, indent=2)
    return metrics


def tested_metric(work_dir, key):
    """The last ``key`` value tools/test.py printed into ``test.out``
    (None if it printed none)."""
    with open(osp.join(work_dir, 'test.out')) as f:
        lines = [ln for ln in f if f'{key}:' in ln]
    return float(lines[-1].split(f'{key}:')[1].split()[0]) if lines else None


def evaluate(config, ckpt, work_dir, options):
    """top-1 from tools/test.py, NC metrics from nc_analysis.py."""
    log = osp.join(work_dir, 'test.out')
    cmd = [sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
           osp.join(work_dir, 'test')]
    if options:
        cmd += ['--cfg-options', *options]
    sh(cmd, log)
    top1 = tested_metric(work_dir, 'accuracy/top1')
    metrics = nc_metrics(config, ckpt, work_dir, options)
    metrics['top1_nc_analysis'] = metrics['top1']
    metrics['top1'] = top1
    return metrics


def nc_metrics(config, ckpt, work_dir, options, split='test'):
    """top-1 and NC metrics of ``split`` from nc_analysis.py."""
    suffix = '' if split == 'test' else f'_{split}'
    out = osp.join(work_dir, f'nc{suffix}.json')
    cmd = [sys.executable, 'tools/analysis_tools/nc_analysis.py', config,
           ckpt, '--split', split, '--out', out]
    if options:
        cmd += ['--cfg-options', *options]
    sh(cmd, osp.join(work_dir, f'nc{suffix}.out'))
    with open(out) as f:
        return json.load(f)


def summary(values):
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='omniglot', choices=DATASETS)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+')
    parser.add_argument('--work-dir', default='work_dirs/efficacy')
    parser.add_argument('--teacher-ckpt', help='reuse this teacher checkpoint')
    args = parser.parse_args()
    spec = DATASETS[args.dataset]
    methods = args.methods or list(spec['methods'])
    root = osp.join(args.work_dir, args.dataset)

    teacher_dir = osp.join(root, 'teacher')
    # a trained teacher's result is run_once's result.json; a given
    # checkpoint's evaluation is cached apart, so it never stands in for one
    cached = osp.join(teacher_dir, 'result.json' if args.teacher_ckpt is None
                      else 'given_teacher.json')
    previous = {}
    if osp.isfile(cached):
        with open(cached) as f:
            previous = json.load(f)
    if args.teacher_ckpt is None:
        teacher = run_once(spec['teacher'], teacher_dir,
                           ['randomness.seed=0', *spec.get('options', [])])
    elif previous.get('ckpt') == osp.abspath(args.teacher_ckpt):
        teacher = previous  # this teacher, evaluated before
    else:
        teacher = evaluate(spec['teacher'], args.teacher_ckpt, teacher_dir,
                           [])
        teacher['ckpt'] = osp.abspath(args.teacher_ckpt)
    teacher_ckpt = osp.abspath(teacher['ckpt'])
    if 'train' not in teacher:  # is it in the terminal phase?
        teacher['train'] = nc_metrics(spec['teacher'], teacher_ckpt,
                                      teacher_dir, spec.get('options', []),
                                      split='train')
        with open(cached, 'w') as f:
            json.dump(teacher, f, indent=2)
    teacher_nc = teacher
    results = dict(teacher=teacher, runs={})
    for method in methods:
        config, extra = spec['methods'][method]
        for seed in args.seeds:
            work = osp.join(root, method, f'seed{seed}')
            options = [f'randomness.seed={seed}', *spec.get('options', []),
                       *extra]
            if method != 'student':  # distillers: the shared teacher
                options.append(f'model.teacher_ckpt={teacher_ckpt}')
            metrics = run_once(config, work, options)
            results['runs'].setdefault(method, {})[seed] = metrics
            print(f'{method} seed {seed}: top1 {metrics["top1"]:.2f} '
                  f'nc1 {metrics["nc1"]:.3f} nc2 {metrics["nc2"]:.3f} '
                  f'nc3 {metrics.get("nc3", float("nan")):.3f}', flush=True)

    lines = ['| method | seeds | top-1 % (mean ± std) | nc1 | nc2 | nc3 | '
             'train min/run |',
             '|---|---|---|---|---|---|---|',
             f'| teacher | 1 | {teacher_nc["top1"]:.2f} | '
             f'{teacher_nc["nc1"]:.3f} | {teacher_nc["nc2"]:.3f} | '
             f'{teacher_nc.get("nc3", float("nan")):.3f} | |']
    train = teacher_nc['train']
    lines.append(f'| teacher, train split | 1 | {train["top1"]:.2f} | '
                 f'{train["nc1"]:.3f} | {train["nc2"]:.3f} | '
                 f'{train.get("nc3", float("nan")):.3f} | |')
    for method, runs in results['runs'].items():
        top1 = summary([r['top1'] for r in runs.values()])
        minutes = statistics.mean(
            (r.get('train_seconds') or 0) / 60 for r in runs.values())
        ncs = [summary([r.get(k, float('nan')) for r in runs.values()])[0]
               for k in ('nc1', 'nc2', 'nc3')]
        lines.append(f'| {method} | {len(runs)} | {top1[0]:.2f} ± '
                     f'{top1[1]:.2f} | {ncs[0]:.3f} | {ncs[1]:.3f} | '
                     f'{ncs[2]:.3f} | {minutes:.1f} |')
    table = '\n'.join(lines)
    print(table)
    with open(osp.join(root, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(root, 'results.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()

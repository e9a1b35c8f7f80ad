"""Efficacy table: student alone vs KD vs NCKD (and variants), several seeds.

    python .dev_scripts/benchmark/efficacy.py omniglot --seeds 0 1 2 \
        [--methods student kd nckd nckd_kd] [--work-dir work_dirs/efficacy] \
        [--split val] [--nproc 2 --cfg-options train_dataloader.batch_size=32]

The methods are config files, listed by name in a benchmark YAML
(``omniglot.yml``, ``fashion_mnist.yml`` next to this script).

Each (method, seed) trains with ``tools/train.py`` under the same schedule
(the method config's own), then the *last* checkpoint (no best-epoch
picking) is evaluated with ``tools/test.py`` and analysed for NC metrics on
the test split. The teacher is trained once (seed 0) unless its checkpoint
exists. Finished runs are reused, so an interrupted table resumes. Prints a
markdown table of top-1 mean ± std (sample std over seeds) and NC metrics,
and writes ``results.json`` and ``results.md`` in the work dir.

``--split val`` is for choosing options: every student run trains without
the benchmark's validation part of the training set and is evaluated on it
(the YAML's ``val_options``: drawers 14-15 of Omniglot's training drawers,
100 of Fashion-MNIST's 1,000 training images per class). The test split is
read only by the default ``--split test``, once per final configuration.
``--val-fold F`` holds out the F-th such block counted from the end (the
datasets' ``val_fold``; 0 is the YAML's), so several folds cross-validate
an option on different images; a fold's runs go to ``val-foldF``.
The teacher is trained on exactly the images its students train on: on
the whole training set for the test split, and without the held-out block
for ``--split val`` (a teacher per fold, seed 0, in ``teacher-<split>``).
A teacher that has seen the validation images passes what it learnt of
them to a student that imitates it (KD with the whole-training-set teacher
scored 90.77 on Omniglot's fold 0, KD with the fold's own teacher 83.47),
so such a validation split rewards imitation, not generalisation. A
``--teacher-ckpt`` is therefore checked against the config recorded in it
and refused if it was trained on other images. ``--nproc N`` trains on
N processes (``tools/dist_train.sh``; on a CPU-only machine, gloo);
``--cfg-options`` adds options to every student run (e.g. the per-process
batch size); both go into the run's folder name.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

import yaml

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

BENCH = osp.dirname(osp.abspath(__file__))


def load_benchmark(name: str) -> dict:
    """A benchmark file: ``teacher`` (config) and ``methods`` (name ->
    config). ``name`` is a YAML path or the stem of one next to this script
    (``omniglot``, ``fashion_mnist``)."""
    path = name if name.endswith(
        ('.yml', '.yaml')) else osp.join(BENCH, f'{name}.yml')
    if not osp.isfile(path):
        raise SystemExit(f'No benchmark file {path!r}: give a YAML path or '
                         f'one of omniglot, fashion_mnist.')
    with open(path) as f:
        spec = yaml.safe_load(f)
    for config in [spec['teacher'], *spec['methods'].values()]:
        if not osp.isfile(osp.join(REPO, config)):
            raise SystemExit(f'{path}: config {config!r} does not exist.')
    return spec


def sh(cmd, log):
    os.makedirs(osp.dirname(log), exist_ok=True)
    with open(log, 'w') as f:
        proc = subprocess.run(
            cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed, see {log}')


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train(config, work_dir, options, nproc=1):
    """Train to the end (resuming an interrupted run); the last checkpoint."""
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
    if nproc > 1:
        cmd = [
            'bash', 'tools/dist_train.sh', config,
            str(nproc), '--work-dir', work_dir
        ]
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        cmd.append('--resume')  # finishes the schedule; no-op when done
    if options:
        cmd += ['--cfg-options', *options]
    sh(cmd, osp.join(work_dir, 'train.out'))
    return last_checkpoint(work_dir), time.time() - start


def run_once(config,
             work_dir,
             options,
             eval_options=(),
             nproc=1,
             split='test'):
    """Train + evaluate, cached in ``result.json`` so tables resume.

    ``split`` names the images evaluated (``test``, ``val``,
    ``val-fold1``, ...) in the result; the tools themselves only know the
    test dataloader, which ``eval_options`` point at the validation block.
    """
    result = osp.join(work_dir, 'result.json')
    if osp.isfile(result):
        with open(result) as f:
            return json.load(f)
    ckpt, seconds = train(config, work_dir, options, nproc)
    metrics = evaluate(config, ckpt, work_dir, list(eval_options))
    metrics.update(
        ckpt=ckpt, config=config, train_seconds=seconds, split=split)
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
    cmd = [
        sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
        osp.join(work_dir, 'test')
    ]
    if options:
        cmd += ['--cfg-options', *options]
    sh(cmd, log)
    top1 = tested_metric(work_dir, 'accuracy/top1')
    top5 = tested_metric(work_dir, 'accuracy/top5')
    metrics = nc_metrics(config, ckpt, work_dir, options)
    metrics['top1_nc_analysis'] = metrics['top1']
    metrics['top1'] = top1
    if top5 is not None:
        metrics['top5'] = top5
    return metrics


def nc_metrics(config, ckpt, work_dir, options, split='test'):
    """top-1 and NC metrics of ``split`` from nc_analysis.py."""
    suffix = '' if split == 'test' else f'_{split}'
    out = osp.join(work_dir, f'nc{suffix}.json')
    cmd = [
        sys.executable, 'tools/analysis_tools/nc_analysis.py', config, ckpt,
        '--split', split, '--out', out
    ]
    if options:
        cmd += ['--cfg-options', *options]
    sh(cmd, osp.join(work_dir, f'nc{suffix}.out'))
    with open(out) as f:
        return json.load(f)


def recorded_train_dataset(ckpt: str) -> dict:
    """The training dataset config a checkpoint was trained with (mmengine
    records the run's config in ``meta.cfg``), through dataset wrappers."""
    from mmengine.config import Config

    from mmnckd.utils.loaders import innermost_dataset
    from mmnckd.utils.safe_load import register_safe_globals, safe_torch_load
    register_safe_globals()
    meta = safe_torch_load(ckpt, map_location='cpu').get('meta') or {}
    if not isinstance(meta.get('cfg'), str):
        raise SystemExit(
            f'--teacher-ckpt {ckpt!r} records no config (meta.cfg), so the '
            f'images it was trained on cannot be checked; leave '
            f'--teacher-ckpt out and efficacy.py trains the teacher itself.')
    cfg = Config.fromstring(meta['cfg'], '.py')
    return dict(innermost_dataset(cfg.train_dataloader.dataset))


def check_teacher_data(ckpt: str, val_options, split_options,
                       val_fold: int) -> None:
    """Refuse a teacher trained on other images than the students.

    ``val_options`` are the benchmark's (fold 0) validation options and
    ``split_options`` this run's (empty for the test split). Each
    ``train_dataloader.dataset.KEY=VALUE`` among them must be in the
    teacher's recorded training dataset (absent or 0 for the test split,
    whose teacher trains on everything), and so must ``val_fold``.
    """
    import ast
    dataset = recorded_train_dataset(ckpt)
    prefix = 'train_dataloader.dataset.'
    expected = {
        option[len(prefix):].split('=', 1)[0]: 0
        for option in val_options if option.startswith(prefix)
    }
    for option in split_options:
        if option.startswith(prefix):
            key, value = option[len(prefix):].split('=', 1)
            expected[key] = ast.literal_eval(value)
    expected['val_fold'] = val_fold if split_options else 0
    wrong = {
        key: dataset.get(key, 0)
        for key, value in expected.items() if dataset.get(key, 0) != value
    }
    if wrong:
        held_out = ' '.join(f'{prefix}{k}={v}' for k, v in expected.items())
        raise SystemExit(
            f'--teacher-ckpt {ckpt!r} was trained with {wrong} in its '
            f'training dataset, but the students of this split train with '
            f'{held_out}. A teacher trained on other images than its '
            f'students (above all, on the validation images) makes the '
            f'comparison unfair. Leave --teacher-ckpt out (efficacy.py then '
            f'trains the teacher of this split, seed 0) or give one trained '
            f'with those options.')


def summary(values):
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def format_top1(values):
    """``mean ± sample std`` over the seeds; a single run has no spread, so
    it is written alone (``88.59``, not ``88.59 ± 0.00``)."""
    mean, std = summary(values)
    return f'{mean:.2f}' if len(values) == 1 else f'{mean:.2f} ± {std:.2f}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'benchmark',
        nargs='?',
        default='omniglot',
        help='a benchmark YAML, or the stem of one next to '
        'this script: omniglot (default), fashion_mnist')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+')
    parser.add_argument('--work-dir', default='work_dirs/efficacy')
    parser.add_argument('--teacher-ckpt', help='reuse this teacher checkpoint')
    parser.add_argument(
        '--split',
        choices=['test', 'val'],
        default='test',
        help='evaluate on the test split (final numbers) or on the '
        'validation part of the training set (choosing options)')
    parser.add_argument(
        '--val-fold',
        type=int,
        default=0,
        help='with --split val: which block of the training set is held '
        'out (0: the YAML val_options; F: the F-th block from the end)')
    parser.add_argument('--nproc', type=int, default=1)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='key=value options added to every student run')
    args = parser.parse_args()
    spec = load_benchmark(args.benchmark)
    methods = args.methods or list(spec['methods'])
    unknown = sorted(set(methods) - set(spec['methods']))
    if unknown:
        raise SystemExit(f'--methods {unknown} are not in {args.benchmark}: '
                         f'{sorted(spec["methods"])}.')
    root = osp.join(args.work_dir,
                    osp.splitext(osp.basename(args.benchmark))[0])
    split_options = []
    if args.split == 'val':
        if not spec.get('val_options'):
            raise SystemExit(f'{args.benchmark} has no val_options.')
        split_options = list(spec['val_options'])
        if args.val_fold:
            split_options += [
                f'{loader}.dataset.val_fold={args.val_fold}'
                for loader in ('train_dataloader', 'val_dataloader',
                               'test_dataloader')
            ]
    elif args.val_fold:
        raise SystemExit('--val-fold needs --split val.')
    split_name = args.split + (f'-fold{args.val_fold}'
                               if args.val_fold else '')
    tag = '_'.join([split_name] +
                   ([f'{args.nproc}proc'] if args.nproc > 1 else []) +
                   [o.replace('/', '-') for o in args.cfg_options])
    runs_root = root if tag == 'test' else osp.join(root, tag)

    # the teacher trains on what its students train on (see the docstring),
    # so each validation fold has its own
    teacher_dir = osp.join(
        root, 'teacher' if args.split == 'test' else f'teacher-{split_name}')
    # a trained teacher's result is run_once's result.json; a given
    # checkpoint's evaluation is cached apart, so it never stands in for one
    cached = osp.join(
        teacher_dir,
        'result.json' if args.teacher_ckpt is None else 'given_teacher.json')
    previous = {}
    if osp.isfile(cached):
        with open(cached) as f:
            previous = json.load(f)
    if args.teacher_ckpt is None:
        teacher = run_once(
            spec['teacher'],
            teacher_dir, ['randomness.seed=0'] + split_options,
            split_options,
            split=split_name)
    elif previous.get('ckpt') == osp.abspath(args.teacher_ckpt):
        teacher = previous  # this teacher, evaluated before
    else:
        check_teacher_data(args.teacher_ckpt, spec.get('val_options', []),
                           split_options, args.val_fold)
        teacher = evaluate(spec['teacher'], args.teacher_ckpt, teacher_dir,
                           split_options)
        teacher.update(ckpt=osp.abspath(args.teacher_ckpt), split=split_name)
    teacher_ckpt = osp.abspath(teacher['ckpt'])
    if 'train' not in teacher:  # is it in the terminal phase?
        teacher['train'] = nc_metrics(
            spec['teacher'],
            teacher_ckpt,
            teacher_dir,
            split_options,
            split='train')
        with open(cached, 'w') as f:
            json.dump(teacher, f, indent=2)
    teacher_nc = teacher
    results = dict(teacher=teacher, runs={})
    for method in methods:
        config = spec['methods'][method]
        for seed in args.seeds:
            work = osp.join(runs_root, method, f'seed{seed}')
            options = [f'randomness.seed={seed}']
            if method != 'student':  # distillers: the shared teacher
                options.append(f'model.teacher_ckpt={teacher_ckpt}')
            options += split_options + args.cfg_options
            metrics = run_once(config, work, options,
                               split_options + args.cfg_options, args.nproc,
                               split_name)
            results['runs'].setdefault(method, {})[seed] = metrics
            print(
                f'{method} seed {seed}: top1 {metrics["top1"]:.2f} '
                f'nc1 {metrics["nc1"]:.3f} nc2 {metrics["nc2"]:.3f} '
                f'nc3 {metrics.get("nc3", float("nan")):.3f}',
                flush=True)

    lines = [
        '| method | seeds | top-1 % (mean ± std) | nc1 | nc2 | nc3 | '
        'train min/run |', '|---|---|---|---|---|---|---|',
        f'| teacher | 1 | {teacher_nc["top1"]:.2f} | '
        f'{teacher_nc["nc1"]:.3f} | {teacher_nc["nc2"]:.3f} | '
        f'{teacher_nc.get("nc3", float("nan")):.3f} | |'
    ]
    train = teacher_nc['train']
    lines.append(f'| teacher, train split | 1 | {train["top1"]:.2f} | '
                 f'{train["nc1"]:.3f} | {train["nc2"]:.3f} | '
                 f'{train.get("nc3", float("nan")):.3f} | |')
    for method, runs in results['runs'].items():
        top1 = format_top1([r['top1'] for r in runs.values()])
        minutes = statistics.mean(
            (r.get('train_seconds') or 0) / 60 for r in runs.values())
        ncs = [
            summary([r.get(k, float('nan')) for r in runs.values()])[0]
            for k in ('nc1', 'nc2', 'nc3')
        ]
        lines.append(f'| {method} | {len(runs)} | {top1} | {ncs[0]:.3f} | '
                     f'{ncs[1]:.3f} | {ncs[2]:.3f} | {minutes:.1f} |')
    table = '\n'.join(lines)
    print(table)
    os.makedirs(runs_root, exist_ok=True)
    with open(osp.join(runs_root, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(runs_root, 'results.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()

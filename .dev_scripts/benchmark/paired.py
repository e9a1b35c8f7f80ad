"""Paired comparison of two methods' efficacy runs, with a t-interval.

    cd work_dirs/efficacy/omniglot
    python ../../../.dev_scripts/benchmark/paired.py \
        val/kd:val/plugin_kd val-fold1/kd:val-fold1/plugin_kd

Each argument is ``REFERENCE:CANDIDATE``, two method folders written by
``efficacy.py`` (``<method>/seed<N>/result.json``). Runs are paired by seed
within an argument (same seed, same split, same teacher), and the pairs of
all arguments are pooled, e.g. one argument per validation fold. For the
``n`` differences ``d_i = top1(candidate) - top1(reference)`` it prints

    mean d  ±  t_{0.975, n-1} * s_d / sqrt(n)

(``s_d`` the sample std of the differences): a 95 % interval for the mean
difference. Pairing removes what two runs of the same seed and fold share
(the fold's difficulty above all), so the interval is narrower than one
built from the two methods' own spreads. The pairs are treated as
independent; pairs that share a fold are not quite, so read the interval
as a guide to which differences the runs can and cannot tell apart.
"""
import argparse
import json
import math
import os
import os.path as osp
import re
import statistics


def seed_results(method_dir: str) -> dict:
    """``{seed: top1}`` of a method folder's finished runs."""
    if not osp.isdir(method_dir):
        raise SystemExit(f'{method_dir!r} is not a folder: give the method '
                         f'folder efficacy.py wrote (<split>/<method>).')
    found = {}
    for name in sorted(os.listdir(method_dir)):
        match = re.fullmatch(r'seed(\d+)', name)
        result = osp.join(method_dir, name, 'result.json')
        if match and osp.isfile(result):
            with open(result) as f:
                found[int(match.group(1))] = float(json.load(f)['top1'])
    if not found:
        raise SystemExit(f'{method_dir!r} holds no seed<N>/result.json: '
                         f'finish its runs with efficacy.py first.')
    return found


def pair_runs(reference_dir: str, candidate_dir: str) -> list:
    """``[(seed, reference top1, candidate top1)]`` for the seeds of both
    folders; a seed that only one of them has is an error, so a comparison
    never silently drops a run."""
    ref, cand = seed_results(reference_dir), seed_results(candidate_dir)
    if ref.keys() != cand.keys():
        raise SystemExit(
            f'Unpaired seeds: {reference_dir!r} has {sorted(ref)}, '
            f'{candidate_dir!r} has {sorted(cand)}. Run the missing seeds '
            f'(or remove the extra ones) so that every run has its pair.')
    return [(seed, ref[seed], cand[seed]) for seed in sorted(ref)]


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t  # scikit-learn's dependency (tests extra)
    return float(t.ppf(0.975, df))


def paired_interval(differences) -> tuple:
    """``(mean, sample std, low, high)``: the 95 % t-interval of the mean
    of ``differences``."""
    n = len(differences)
    if n < 2:
        raise ValueError(f'A paired interval needs 2 or more differences, '
                         f'got {n}: run more seeds or folds.')
    mean = statistics.mean(differences)
    std = statistics.stdev(differences)
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def parse_pair(text: str) -> tuple:
    parts = text.split(':')
    if len(parts) != 2 or not all(parts):
        raise SystemExit(f'{text!r}: write REFERENCE_DIR:CANDIDATE_DIR '
                         f'(two method folders joined by one colon).')
    return parts[0], parts[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'pairs',
        nargs='+',
        metavar='REFERENCE_DIR:CANDIDATE_DIR',
        help='two method folders of efficacy.py; several are pooled')
    args = parser.parse_args(argv)
    lines = [
        '| reference | candidate | seed | reference | candidate | '
        'difference |', '|---|---|---|---|---|---|'
    ]
    differences = []
    for ref_dir, cand_dir in map(parse_pair, args.pairs):
        for seed, ref, cand in pair_runs(ref_dir, cand_dir):
            differences.append(cand - ref)
            lines.append(f'| {ref_dir} | {cand_dir} | {seed} | {ref:.2f} | '
                         f'{cand:.2f} | {cand - ref:+.2f} |')
    mean, std, low, high = paired_interval(differences)
    lines.append(f'\n{len(differences)} pairs: candidate - reference = '
                 f'{mean:+.2f} (sd {std:.2f}), 95 % interval '
                 f'[{low:+.2f}, {high:+.2f}]')
    print('\n'.join(lines))
    return dict(n=len(differences), mean=mean, std=std, low=low, high=high)


if __name__ == '__main__':
    main()

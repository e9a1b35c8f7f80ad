"""Rank candidate teachers by the Neural Collapse structure of their features.

    python tools/analysis_tools/rank_teachers.py \
        --teachers CFG1 CKPT1 --teachers CFG2 CKPT2 [...] \
        [--split train|test] [--by nc2|nc1|nc3|top1] \
        [--which student|teacher] \
        [--out ranking.json]

Runs ``mmnckd.apis.analyse`` on each teacher (default: the train split, where
NCKD takes the teacher's prototypes) and prints a table ranked by:

- ``nc2`` (default): ascending, closest to a simplex ETF first; ties by nc3
  descending;
- ``nc1``: ascending (most collapsed first); ties by nc2. nc1 depends on the
  feature dimension, so a warning is printed when the dims differ;
- ``nc3``: descending (classifier best aligned with the class means);
- ``top1``: descending.

The table shows rank, the ranking metric, the tie-breaker, the other NC
metrics, the feature dim and the teacher. ``--out`` writes the ranked list
(best first) as JSON: ``{"by": ..., "split": ..., "ranking": [{"rank",
"config", "checkpoint", "dim", "top1", "nc1", "nc2", "nc2_equinorm",
"nc3"}, ...]}``.
"""
import argparse
import json
import math
import os.path as osp

from mmengine.config import DictAction

import mmnckd  # noqa: F401
from mmnckd.apis import analyse

# key -> (descending?, tie-breaker key, tie-breaker descending?)
ORDER = {
    'nc2': (False, 'nc3', True),
    'nc1': (False, 'nc2', False),
    'nc3': (True, 'nc2', False),
    'top1': (True, 'nc2', False),
}
COLUMNS = ('top1', 'nc1', 'nc2', 'nc2_equinorm', 'nc3')


def _val(entry, key, descending):
    v = entry.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return math.inf  # missing metrics rank last
    return -v if descending else v


def rank(entries, by='nc2'):
    """Entries (dicts with the metric keys) sorted best first."""
    desc, tie, tie_desc = ORDER[by]
    return sorted(
        entries, key=lambda e: (_val(e, by, desc), _val(e, tie, tie_desc)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--teachers',
        nargs=2,
        action='append',
        required=True,
        metavar=('CONFIG', 'CHECKPOINT'))
    parser.add_argument('--split', default='train', choices=['train', 'test'])
    parser.add_argument('--by', default='nc2', choices=list(ORDER))
    parser.add_argument(
        '--which',
        default='student',
        choices=['student', 'teacher'],
        help='for a distiller config: which model to analyse')
    parser.add_argument('--out', help='write the ranking as JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)

    entries = []
    for cfg, ckpt in args.teachers:
        res = analyse(
            cfg,
            ckpt,
            args.split,
            args.which,
            args.cfg_options,
            keep_feats=True)
        feats = res.pop('feats')
        res.pop('labels', None)
        entry = dict(config=cfg, checkpoint=ckpt, dim=int(feats.size(1)))
        entry.update({k: float(res[k]) for k in COLUMNS if k in res})
        entry['num_samples'] = res.get('num_samples')
        entries.append(entry)
        print(f'analysed {ckpt}: ' + ', '.join(f'{k}={entry[k]:.4f}'
                                               for k in COLUMNS if k in entry))

    dims = sorted({e['dim'] for e in entries})
    if len(dims) > 1 and args.by == 'nc1':
        print(f'WARNING: feature dims differ ({dims}); nc1 depends on the '
              'feature dimension, so ranking by nc1 compares unlike '
              'quantities. Consider --by nc2.')

    ranked = rank(entries, args.by)
    desc, tie, tie_desc = ORDER[args.by]
    others = [k for k in COLUMNS if k not in (args.by, tie)]
    head = ([
        'rank', f'{args.by} {"(desc)" if desc else "(asc)"}',
        f'{tie} {"(desc)" if tie_desc else "(asc)"}'
    ] + others + ['dim', 'teacher'])
    print(f'\nTeachers ranked by {args.by} on the {args.split} split '
          f'(best first):')
    rows = []
    for i, e in enumerate(ranked, 1):
        e['rank'] = i
        name = f'{osp.basename(e["config"])} {e["checkpoint"]}'
        rows.append([str(i)] + [
            f'{e[k]:.4f}' if k in e else '-' for k in [args.by, tie] + others
        ] + [str(e['dim']), name])
    widths = [max(len(r[j]) for r in rows + [head]) for j in range(len(head))]
    fmt = ' | '.join('{:<%d}' % w if j == len(head) - 1 else '{:>%d}' % w
                     for j, w in enumerate(widths))
    print(fmt.format(*head).rstrip())
    print('-+-'.join('-' * w for w in widths))
    for r in rows:
        print(fmt.format(*r).rstrip())
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(
                dict(by=args.by, split=args.split, ranking=ranked),
                f,
                indent=2)
        print(f'ranking saved to {args.out}')


if __name__ == '__main__':
    main()

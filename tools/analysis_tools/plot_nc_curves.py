"""Validation accuracy and Neural Collapse metrics over epochs, several runs
in one figure (e.g. KD vs NCKD).

    python tools/analysis_tools/plot_nc_curves.py WORK_DIR [WORK_DIR ...] \
        --out curves.png [--keys accuracy/top1 nc/nc1 nc/nc2 nc/nc3] \
        [--labels kd nckd]

Reads mmengine's scalar log ``WORK_DIR/<timestamp>/vis_data/scalars.json``
of the latest timestamp folder that has one (a WORK_DIR may also be a
timestamp folder or the scalars.json itself). Validation lines (no ``iter``,
``step`` = epoch) give one point per epoch. Draws one subplot per key and
one line per work dir (labelled by ``--labels``, else the work dir's name;
nc1 on a log scale), and prints per run the file read and, per key, the
last epoch's value.
"""
import argparse
import os.path as osp

from mmnckd.visualization.nc_plots import (latest_scalars_file,
                                           load_val_scalars, plot_nc_curves)

DEFAULT_KEYS = ['accuracy/top1', 'nc/nc1', 'nc/nc2', 'nc/nc3']


def _default_label(work_dir: str) -> str:
    parts = osp.normpath(osp.abspath(work_dir)).split(osp.sep)
    # e.g. .../omniglot/nckd/seed0 -> nckd/seed0
    return '/'.join(parts[-2:]) if parts[-1].startswith('seed') else parts[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--keys', nargs='+', default=DEFAULT_KEYS)
    parser.add_argument(
        '--labels', nargs='+', help='one legend label per work dir')
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.work_dirs):
        parser.error(f'{len(args.labels)} --labels for '
                     f'{len(args.work_dirs)} work dirs.')
    labels = args.labels or [_default_label(w) for w in args.work_dirs]

    series = []
    for wd, lab in zip(args.work_dirs, labels):
        path = latest_scalars_file(wd)
        s = load_val_scalars(path)
        series.append(s)
        n_ep = max((len(v) for v in s.values()), default=0)
        print(f'{lab}: {path} ({n_ep} validation epochs)')
        for key in args.keys:
            if s.get(key):
                ep, val = s[key][-1]
                print(f'    {key:>16} @ epoch {ep}: {val:.4f}')
            else:
                print(f'    {key:>16}: not logged')
    plot_nc_curves(series, args.out, keys=args.keys, labels=labels)
    print(f'saved {args.out}')


if __name__ == '__main__':
    main()

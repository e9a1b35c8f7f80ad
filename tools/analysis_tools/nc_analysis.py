"""Neural Collapse metrics of a trained model, as a table and JSON.

    python tools/analysis_tools/nc_analysis.py CONFIG CHECKPOINT \
        [--split train|test] [--which student|teacher] [--out metrics.json] \
        [--vs-teacher] \
        [--tsne tsne.png [--tsne-classes 20] [--tsne-points 2000]]

Works for plain mmpretrain classifiers and NCKD distillers (the student, or
the teacher with ``--which teacher``). Prints top-1 and nc1 (within-class
variability, 0 = collapsed), nc2 (distance from a simplex ETF, 0 = ETF),
nc2_equinorm and nc3 (classifier/class-mean alignment, 1 = self-dual).
``--vs-teacher`` (a distiller's student) adds gram_dist (0 = the teacher's
class-mean angles) and gram_corr (1 = the same ordering of close classes).

``--tsne PNG`` also saves a t-SNE of the pre-logit features coloured by
class (the first ``--tsne-classes`` class indices, at most ``--tsne-points``
samples, fixed seed) with the NC metrics in the title.
"""
import argparse
import json

from mmengine.config import DictAction

import mmnckd  # noqa: F401
from mmnckd.apis import analyse


def main():
    parser = argparse.ArgumentParser(description='NC metrics of a model')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', default='test', choices=['train', 'test'])
    parser.add_argument(
        '--which',
        default='student',
        choices=['student', 'teacher'],
        help='for a distiller: which model to analyse')
    parser.add_argument('--out', help='write the metrics as JSON here')
    parser.add_argument(
        '--tsne',
        metavar='PNG',
        help='save a t-SNE plot of the pre-logit features')
    parser.add_argument(
        '--tsne-classes',
        type=int,
        default=20,
        help='t-SNE of the first N class indices only')
    parser.add_argument(
        '--tsne-points',
        type=int,
        default=2000,
        help='t-SNE of at most this many samples')
    parser.add_argument('--tsne-seed', type=int, default=0)
    parser.add_argument(
        '--vs-teacher',
        action='store_true',
        help='for a distiller\'s student: also run the teacher on the same '
        'images and report gram_dist / gram_corr, how far the student\'s '
        'class-mean geometry is from the teacher\'s')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    result = analyse(
        args.config,
        args.checkpoint,
        args.split,
        args.which,
        args.cfg_options,
        keep_feats=bool(args.tsne),
        vs_teacher=args.vs_teacher)
    feats = result.pop('feats', None)
    labels = result.pop('labels', None)
    keys = [
        k for k in ('top1', 'nc1', 'nc2', 'nc2_equinorm', 'nc3', 'gram_dist',
                    'gram_corr') if k in result
    ]
    print(' | '.join(f'{k:>12}' for k in keys))
    print(' | '.join(f'{result[k]:12.4f}' for k in keys))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    if args.tsne:
        from mmnckd.visualization import plot_tsne
        plot_tsne(
            feats,
            labels,
            args.tsne,
            metrics=result,
            max_classes=args.tsne_classes,
            max_points=args.tsne_points,
            random_state=args.tsne_seed,
            title=f'{args.which} features ({args.split})')
        print(f't-SNE saved to {args.tsne}')


if __name__ == '__main__':
    main()

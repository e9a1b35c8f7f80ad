"""Publish students of an efficacy table to the model zoo.

    python tools/benchmark/publish_runs.py --work-dir work_dirs/efficacy \
        [--dataset omniglot fashion_mnist] [--methods nckd kd dkd] [--seed 0]

For each (dataset, method), the last checkpoint of ``seed`` that
``efficacy.py`` trained and evaluated is published with
``tools/model_converters/publish_model.py`` into ``zoo/<dataset>/``, with the
top-1 (and top-5 where the config reports it) that ``tools/test.py`` printed
for that checkpoint, into ``configs/<method>/metafile.yml``. The metafile's
``Config`` is the method's config, so the published numbers are reproduced by
``tools/test.py <Config> <Weights>``.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys

from efficacy import DATASETS, REPO, tested_metric

# dataset key -> (data tag of the model name, Dataset name, training batch)
DATA = {
    'omniglot': ('omniglot', 'Omniglot', '1xb64'),
    'fashion_mnist': ('fashion-mnist', 'Fashion-MNIST', '1xb128'),
}
STUDENT, TEACHER = 'resnet18w8', 'resnet18w32'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/efficacy')
    parser.add_argument('--datasets', nargs='+', default=list(DATA))
    parser.add_argument('--methods', nargs='+', default=['nckd', 'kd', 'dkd'])
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    for dataset in args.datasets:
        tag, data_name, batch = DATA[dataset]
        for method in args.methods:
            run = osp.join(args.work_dir, dataset, method, f'seed{args.seed}')
            with open(osp.join(run, 'result.json')) as f:
                result = json.load(f)
            config = DATASETS[dataset]['methods'][method][0]
            name = f'{method}_{STUDENT}_{TEACHER}-teacher_{batch}_{tag}'
            cmd = [sys.executable, 'tools/model_converters/publish_model.py',
                   result['ckpt'], osp.join('zoo', tag), '--name', name,
                   '--metafile', f'configs/{method}/metafile.yml',
                   '--config', config, '--dataset', data_name,
                   '--top1', f'{result["top1"]:.2f}',
                   '--input-shape', '1', '28', '28']
            top5 = tested_metric(run, 'accuracy/top5')
            if top5 is not None:
                cmd += ['--top5', f'{top5:.2f}']
            print(' '.join(cmd), flush=True)
            subprocess.run(cmd, cwd=REPO, check=True)


if __name__ == '__main__':
    main()

"""Publish students of an efficacy table to the model zoo.

    python .dev_scripts/benchmark/publish_runs.py \
        [--work-dir work_dirs/efficacy] [--benchmarks omniglot fashion_mnist]
        [--methods nckd kd dkd] [--seed 0]

For each (benchmark, method), the last checkpoint of ``seed`` that
``efficacy.py`` trained and evaluated (its ``result.json``: checkpoint,
config, top-1/top-5 printed by ``tools/test.py``) is published with
``tools/model_converters/publish_model.py`` into ``zoo/<data>/`` under the
config's basename, into ``configs/<method>/metafile.yml``. So the published
numbers are reproduced by ``tools/test.py <Config> <Weights>``.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# benchmark -> (zoo folder, Dataset name in the metafile)
DATA = {
    'omniglot': ('omniglot', 'Omniglot'),
    'fashion_mnist': ('fashion-mnist', 'Fashion-MNIST'),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/efficacy')
    parser.add_argument('--benchmarks', nargs='+', default=list(DATA))
    parser.add_argument('--methods', nargs='+', default=['nckd', 'kd', 'dkd'])
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    for bench in args.benchmarks:
        folder, data_name = DATA[bench]
        for method in args.methods:
            run = osp.join(args.work_dir, bench, method, f'seed{args.seed}')
            with open(osp.join(run, 'result.json')) as f:
                result = json.load(f)
            config = result['config']
            name = osp.splitext(osp.basename(config))[0]
            cmd = [
                sys.executable, 'tools/model_converters/publish_model.py',
                result['ckpt'],
                osp.join('zoo', folder), '--name', name, '--metafile',
                f'configs/{method}/metafile.yml', '--config', config,
                '--dataset', data_name, '--top1', f'{result["top1"]:.2f}',
                '--input-shape', '1', '28', '28'
            ]
            if result.get('top5') is not None:
                cmd += ['--top5', f'{result["top5"]:.2f}']
            print(' '.join(cmd), flush=True)
            subprocess.run(cmd, cwd=REPO, check=True)


if __name__ == '__main__':
    main()

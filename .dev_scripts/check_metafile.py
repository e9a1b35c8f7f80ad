"""Check the metafiles that model-index.yml imports (mmpretrain's conventions).

    python .dev_scripts/check_metafile.py [model-index.yml]

Every model: ``Name`` equals its ``Config``'s basename and is unique; the
config exists; ``In Collection`` is a collection of the same metafile;
``Metadata`` has integer ``FLOPs`` and ``Parameters`` and the training data;
``Results`` (when present) name a task, a dataset and numeric metrics;
``Weights`` (when present) is an http(s) URL or an existing file relative to
the index's directory (never an absolute path). Every collection's README
exists, and every ``configs/*/metafile.yml`` is imported. Prints each problem
and exits 1 if there is any.
"""
import glob
import os.path as osp
import sys

import yaml


def check_model(model, collections, root):
    name = model.get('Name', '?')
    errors = []
    config = model.get('Config')
    if not config or not osp.isfile(osp.join(root, config)):
        errors.append(f'Config {config!r} does not exist')
    elif name != osp.splitext(osp.basename(config))[0]:
        errors.append(f'Name differs from the config basename {config!r}')
    if model.get('In Collection') not in collections:
        errors.append(f'In Collection {model.get("In Collection")!r} is not '
                      f'one of {sorted(collections)}')
    meta = model.get('Metadata') or {}
    for key in ('FLOPs', 'Parameters'):
        if not isinstance(meta.get(key), int):
            errors.append(f'Metadata.{key} is not an integer')
    if not meta.get('Training Data'):
        errors.append('Metadata.Training Data is missing')
    for result in model.get('Results') or []:
        if not result.get('Task') or not result.get('Dataset'):
            errors.append('a Result lacks Task or Dataset')
        metrics = result.get('Metrics') or {}
        if not metrics or not all(
                isinstance(v, (int, float)) for v in metrics.values()):
            errors.append('a Result has no numeric Metrics')
    weights = model.get('Weights')
    if weights and not weights.startswith(('http://', 'https://')):
        if osp.isabs(weights):
            errors.append(f'Weights {weights!r} is an absolute path')
        elif not osp.isfile(osp.join(root, weights)):
            errors.append(f'Weights {weights!r} does not exist')
    return [f'{name}: {e}' for e in errors]


def main(index_path='model-index.yml'):
    root = osp.dirname(osp.abspath(index_path))
    with open(index_path) as f:
        imports = yaml.safe_load(f)['Import']
    errors, names = [], set()
    found = {
        osp.relpath(p, root)
        for p in glob.glob(osp.join(root, 'configs/*/metafile.yml'))
    }
    for missing in sorted(found - set(imports)):
        errors.append(f'{index_path}: does not import {missing}')
    for path in imports:
        with open(osp.join(root, path)) as f:
            data = yaml.safe_load(f)
        collections = {c['Name']: c for c in data.get('Collections') or []}
        for c in collections.values():
            readme = c.get('README')
            if readme and not osp.isfile(osp.join(root, readme)):
                errors.append(f'{path}: collection {c["Name"]}: README '
                              f'{readme!r} does not exist')
        for model in data.get('Models') or []:
            if model.get('Name') in names:
                errors.append(f'{path}: {model.get("Name")}: duplicate name')
            names.add(model.get('Name'))
            errors += [
                f'{path}: {e}' for e in check_model(model, collections, root)
            ]
    for e in errors:
        print(e)
    print(f'{len(names)} models checked, {len(errors)} problems')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))

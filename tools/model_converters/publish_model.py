"""Publish a checkpoint for the model zoo: strip it, name it, hash it and
(optionally) write its metafile entry.

    python tools/model_converters/publish_model.py IN_CKPT OUT_DIR \\
        [--name NAME] \\
        [--metafile configs/nckd/metafile.yml --config CONFIG \\
         --dataset CIFAR-100 --top1 76.1 --top5 93.2 \\
         --weights-url https://host/path/ --flops N | --input-shape 3 32 32]

1. Loads ``IN_CKPT`` (under ``torch.load(weights_only=True)`` after
   ``import mmnckd``): a training checkpoint of a distiller or of a plain
   classifier, or a student exported by ``export_student.py``.
2. Keeps only ``state_dict`` and ``meta`` (drops the optimizer, message hub,
   parameter schedulers, ...); ``meta`` keeps only ``PUBLISHED_META`` (no
   training config, whose paths belong to the machine it ran on), reduced
   to plain Python types, so the file loads with
   ``torch.load(weights_only=True)`` even without mmnckd.
3. With ``--config``, builds that config's model and checks the weights fit
   it. The published weights must fit the metafile's ``Config``, which
   ``mmpretrain.get_model(NAME, pretrained=True)`` builds: a plain student
   checkpoint published with a distiller config is stored under the
   distiller's ``student.`` prefix. Every distiller entry has one form: the
   ``student.`` keys alone (the student's backbone, neck -- the projector --
   and head, which is all ``predict`` runs); the teacher, prototypes, class
   means and loss memories are dropped.
4. Saves ``OUT_DIR/{NAME}_{YYYYMMDD}-{sha256[:8]}.pth`` (mmpretrain's
   convention: save, hash the saved file, rename) and prints its path.
5. With ``--metafile``, adds the model entry to that metafile, or updates
   the entry with the same ``Name`` (fields not given are kept): Metadata
   (Parameters of the deployable classifier -- the student of a distiller --
   counted from the state dict; FLOPs from ``--flops`` or computed with
   mmengine's ``get_model_complexity_info`` for ``--input-shape``; Training
   Data; Epochs from the config), In Collection, Results (``--top1`` /
   ``--top5`` on ``--dataset``), Weights and Config. Weights is
   ``--weights-url`` or the published file's path relative to ``--root``
   (the directory of ``model-index.yml``: the repository root), so that the
   zoo resolves from a clone in any folder; a file outside ``--root``
   without ``--weights-url`` is refused, and so is an absolute path.

A model's name is its config's basename (mmpretrain's convention), which for
a distiller reads::

    {algo}_{teacher}_{student}_{N}xb{M}[-{variant}]_{data}
    e.g. nckd_resnet32x4_resnet8x4_1xb64_cifar100

all lower case, words inside a field joined with ``-``: ``algo`` the method
(``kd``, ``dkd``, ``nckd``, ...), ``N x M`` the GPUs and the batch per GPU,
``data`` the dataset tag (``cifar100``, ``in1k``, ``omniglot``,
``fashion-mnist``, ...). ``--name`` defaults to it; with ``--metafile`` any
other name is refused.
"""
import argparse
import copy
import datetime
import hashlib
import os
import os.path as osp
import re
import warnings
from typing import Optional, Sequence

import torch
import yaml

import mmnckd  # noqa: F401  (registers mmnckd; safe checkpoint globals)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NAME = r'[a-z0-9]+(?:[-.][a-z0-9]+)*'
ZOO_NAME = re.compile(rf'^{NAME}(?:_{NAME}){{2,}}$')
TASK = 'Image Classification'
#: The ``meta`` entries a published checkpoint keeps.
PUBLISHED_META = ('dataset_meta', 'epoch', 'iter', 'seed', 'mmengine_version')


# --------------------------------------------------------------- checkpoint
def load_checkpoint_file(path: str) -> dict:
    """``torch.load`` under ``weights_only=True`` (mmnckd allow-lists the
    types mmengine writes into checkpoints), with errors that name the file
    when it is missing, empty, truncated or refused."""
    from mmnckd.utils import safe_torch_load
    ckpt = safe_torch_load(path, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path} does not hold a checkpoint dict.')
    return ckpt


def state_dict_of(ckpt: dict) -> dict:
    state = ckpt.get('state_dict', ckpt)
    if not state or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError('The checkpoint holds no state_dict of tensors.')
    return {
        k[7:] if k.startswith('module.') else k: v
        for k, v in state.items()
    }


def plain(obj):
    """``obj`` with only builtin containers, numbers, strings and tensors."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str)) or \
            torch.is_tensor(obj):
        return obj
    if hasattr(obj, 'item') and callable(obj.item):  # numpy scalars
        try:
            return plain(obj.item())
        except (TypeError, ValueError):
            pass
    return str(obj)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def save_published(state: dict,
                   meta: dict,
                   out_dir: str,
                   name: str,
                   date: Optional[str] = None) -> str:
    """Save ``{state_dict, meta}``, hash the file, rename it to
    ``{name}_{date}-{sha256[:8]}.pth``; returns the final path."""
    os.makedirs(out_dir, exist_ok=True)
    date = date or datetime.date.today().strftime('%Y%m%d')
    tmp = osp.join(out_dir, f'{name}.pth.tmp')
    torch.save({'state_dict': state, 'meta': meta}, tmp)
    sha = sha256_of(tmp)
    final = osp.join(out_dir, f'{name}_{date}-{sha[:8]}.pth')
    os.replace(tmp, final)
    return final


# -------------------------------------------------------------------- model
def build_model(config: str):
    """The config's model, built as ``mmpretrain.get_model`` builds it."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(config)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    return cfg, model.eval()


def published_state(state: dict, model=None) -> dict:
    """The one published form: a distiller checkpoint keeps its
    ``student.`` entries only, a plain classifier everything."""
    if model is not None and is_distiller(model) or (model is None and any(
            k.startswith('student.') for k in state)):
        return {k: v for k, v in state.items() if k.startswith('student.')}
    return state


def published_meta(meta: dict) -> dict:
    """``meta`` reduced to ``PUBLISHED_META``, in plain Python types."""
    return plain({k: meta[k] for k in PUBLISHED_META if k in meta})


def weights_entry(out: str, root: str, url: Optional[str] = None) -> str:
    """The metafile's ``Weights`` for the published file ``out``: ``url``
    (a URL ending in ``/`` gets the file name appended), else ``out``
    relative to ``root``. Raises ValueError for a file outside ``root``."""
    if url:
        return url + osp.basename(out) if url.endswith('/') else url
    root = osp.abspath(root)
    full = osp.abspath(out)
    if not full.startswith(root + os.sep):
        raise ValueError(
            f'The published file {full} is outside --root {root}: a zoo '
            f'entry must name its weights relative to the directory of '
            f'model-index.yml. Publish into that tree (e.g. zoo/<dataset>/) '
            f'or give --weights-url where the file is hosted.')
    return osp.relpath(full, root).replace(os.sep, '/')


def check_weights_entry(entry: dict) -> None:
    """A ``Weights`` value must be a URL or a relative path (the check
    ``mmnckd.apis.model_zoo`` applies when it registers the zoo)."""
    from mmnckd.apis.model_zoo import resolve_weights
    resolve_weights(entry.get('Weights'), REPO, entry.get('Name'))


def is_distiller(model) -> bool:
    from mmnckd.models.distillers import SingleTeacherDistiller
    return isinstance(model, SingleTeacherDistiller)


def deployable(model):
    """The classifier that is deployed: a distiller's student."""
    return model.student if is_distiller(model) else model


def fit_state_to_model(state: dict, model) -> dict:
    """Check ``state`` fits ``model``; a plain student checkpoint for a
    distiller is moved under ``student.``. Raises ValueError otherwise."""
    own = model.state_dict()  # a distiller leaves its teacher out
    if is_distiller(model) and not any(
            k.startswith('student.') for k in state):
        state = {f'student.{k}': v for k, v in state.items()}
        print('The checkpoint is a plain classifier and the config a '
              'distiller: storing it as the distiller\'s student '
              '("student." prefix).')

    def required(key):
        if key.endswith('num_batches_tracked'):
            return False
        return key.startswith('student.') if is_distiller(model) else True

    missing = sorted(k for k in own if k not in state and required(k))
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(
        f'{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in state
        if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or mismatched:

        def show(keys):
            return f'{keys[:5]}{" ..." if len(keys) > 5 else ""} ({len(keys)})'

        raise ValueError(
            f'The checkpoint does not fit the config\'s model: missing keys '
            f'{show(missing)}, unexpected keys {show(unexpected)}, shape '
            f'mismatches (checkpoint vs model) {show(mismatched)}.')
    return state


def count_parameters(state: dict, model=None) -> int:
    """Parameters of the deployable classifier in ``state``.

    With ``model``, exactly the parameters (not buffers) of
    ``deployable(model)``; without, every floating-point tensor except
    BatchNorm statistics (of the ``student.`` entries for a distiller
    checkpoint)."""
    if model is not None:
        prefix = 'student.' if is_distiller(model) else ''
        names = {prefix + n for n, _ in deployable(model).named_parameters()}
        return int(sum(v.numel() for k, v in state.items() if k in names))
    if any(k.startswith('student.') for k in state):
        state = {k: v for k, v in state.items() if k.startswith('student.')}
    stats = ('running_mean', 'running_var', 'num_batches_tracked')
    return int(
        sum(v.numel() for k, v in state.items()
            if v.is_floating_point() and not k.endswith(stats)))


def count_flops(model, input_shape: Sequence[int]) -> int:
    """FLOPs (multiply-adds, mmpretrain's convention) of one forward pass,
    image to logits, of the deployable classifier, by mmengine's
    ``FlopAnalyzer`` (what ``get_model_complexity_info`` uses)."""
    from mmengine.analysis import FlopAnalyzer

    class Logits(torch.nn.Module):

        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, x):
            return self.classifier(x, mode='tensor')

    net = Logits(deployable(model)).eval()
    inputs = (torch.randn(1, *input_shape), )
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        analyzer = FlopAnalyzer(net, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return int(analyzer.total())


# ----------------------------------------------------------------- metafile
class _IndentDumper(yaml.SafeDumper):
    """Indent block sequences under their key (mmpretrain's metafile
    style)."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def read_metafile(path: str):
    """(data, leading comment lines) of a metafile."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    header = []
    for line in text.splitlines():
        if line.startswith('#') or (header and not line.strip()):
            header.append(line)
        else:
            break
    data = yaml.safe_load(text) or {}
    return data, header


def write_metafile(path: str, data: dict, header=()) -> None:
    text = yaml.dump(
        data,
        Dumper=_IndentDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1000)
    header = '\n'.join(header).rstrip()
    with open(path, 'w', encoding='utf-8') as f:
        f.write((header + '\n' if header else '') + text)


def repo_relative(path: str) -> str:
    """``path`` relative to the repository root when inside it."""
    full = osp.abspath(path)
    if full.startswith(REPO + os.sep):
        return osp.relpath(full, REPO)
    return path


def update_metafile(path: str, entry: dict) -> dict:
    """Add ``entry`` to the metafile's ``Models`` or update the model with
    the same ``Name``: mappings (Metadata) merge, other given fields
    replace. Fills ``In Collection`` from the metafile's only collection
    when missing. Returns the written entry."""
    check_weights_entry(entry)
    data, header = read_metafile(path)
    models = data.setdefault('Models', [])
    if models is None:
        models = data['Models'] = []
    collections = [c['Name'] for c in data.get('Collections') or []]
    if 'In Collection' not in entry:
        if len(collections) != 1:
            raise ValueError(f'{path} has {len(collections)} collections '
                             f'({collections}): pass --collection.')
        entry['In Collection'] = collections[0]
    elif collections and entry['In Collection'] not in collections:
        raise ValueError(f'--collection {entry["In Collection"]!r} is not '
                         f'one of the collections of {path}: {collections}.')
    for i, old in enumerate(models):
        if old.get('Name') == entry['Name']:
            merged = dict(old)
            for key, value in entry.items():
                if isinstance(value, dict) and isinstance(old.get(key), dict):
                    merged[key] = {**old[key], **value}
                else:
                    merged[key] = value
            models[i] = entry = order_entry(merged)
            break
    else:
        models.append(entry)
    write_metafile(path, data, header)
    return entry


def order_entry(entry: dict) -> dict:
    keys = [
        'Name', 'Metadata', 'In Collection', 'Results', 'Weights', 'Config'
    ]
    return {
        k: entry[k]
        for k in keys + sorted(set(entry) - set(keys)) if k in entry
    }


# --------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Strip, name and hash a checkpoint for the model zoo, '
        'and write its metafile entry.')
    parser.add_argument('in_file', help='input checkpoint')
    parser.add_argument('out_dir', help='where the published file goes')
    parser.add_argument(
        '--name', help='model name (lower case, see the module doc)')
    parser.add_argument(
        '--metafile',
        help='metafile to add/update the '
        'entry in, e.g. configs/nckd/metafile.yml')
    parser.add_argument(
        '--config',
        help='the config the weights belong to '
        '(written as the entry\'s Config; checked against '
        'the weights)')
    parser.add_argument(
        '--dataset',
        help='evaluation dataset, e.g. '
        'CIFAR-100, ImageNet-1k, Omniglot')
    parser.add_argument(
        '--training-data',
        help='Metadata.Training Data '
        '(defaults to --dataset)')
    parser.add_argument('--top1', type=float, help='top-1 accuracy (%%)')
    parser.add_argument('--top5', type=float, help='top-5 accuracy (%%)')
    parser.add_argument(
        '--collection',
        help='In Collection (defaults to '
        'the metafile\'s only collection)')
    parser.add_argument(
        '--weights-url',
        help='URL of the published file '
        '(a URL ending in "/" gets the file name appended); '
        'default: the local path')
    parser.add_argument(
        '--root',
        default=REPO,
        help='the directory Weights paths are relative to: '
        'the one holding model-index.yml (default: this '
        'repository)')
    parser.add_argument('--flops', type=int, help='FLOPs to record')
    parser.add_argument(
        '--input-shape',
        type=int,
        nargs=3,
        metavar=('C', 'H', 'W'),
        help='compute FLOPs for this input (needs --config)')
    parser.add_argument(
        '--date', help='YYYYMMDD for the file name '
        '(default: today)')
    parser.add_argument(
        '--no-check',
        action='store_true',
        help='do not check the weights against --config')
    args = parser.parse_args(argv)
    if (args.top1 is not None or args.top5 is not None) and not args.dataset:
        parser.error('--top1/--top5 need --dataset')
    if args.input_shape and not args.config:
        parser.error('--input-shape needs --config')
    if args.metafile and not args.config:
        parser.error('--metafile needs --config (the entry\'s Config)')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.name is None:
        if not args.config:
            raise SystemExit('--name is needed without --config.')
        args.name = osp.splitext(osp.basename(args.config))[0]
    if not ZOO_NAME.match(args.name):
        raise SystemExit(
            f'--name {args.name!r}: use lower-case fields separated by "_" '
            f'(e.g. nckd_resnet32x4_resnet8x4_1xb64_cifar100).')
    if args.metafile and args.name != osp.splitext(osp.basename(
            args.config))[0]:
        raise SystemExit(
            f'--name {args.name!r} differs from the basename of --config '
            f'{args.config!r}: a metafile entry is named after its config '
            f'(mmpretrain\'s convention); leave --name out.')
    if args.metafile and not args.weights_url:
        # fail before anything is written
        weights_entry(osp.join(args.out_dir, args.name + '.pth'), args.root)
    ckpt = load_checkpoint_file(args.in_file)
    state = state_dict_of(ckpt)
    meta = published_meta(dict(ckpt.get('meta') or {}))

    model = cfg = None
    if args.config:
        cfg, model = build_model(args.config)
        if not args.no_check:
            state = fit_state_to_model(state, model)
    state = published_state(state, None if args.no_check else model)

    out = save_published(state, meta, args.out_dir, args.name, args.date)
    print(out)

    if args.metafile:
        metadata = {}
        if args.flops is not None:
            metadata['FLOPs'] = int(args.flops)
        elif args.input_shape:
            metadata['FLOPs'] = count_flops(model, args.input_shape)
        metadata['Parameters'] = count_parameters(
            state, None if args.no_check else model)
        training_data = args.training_data or args.dataset
        if training_data:
            metadata['Training Data'] = training_data
        epochs = (cfg.get('train_cfg') or {}).get('max_epochs')
        if epochs:
            metadata['Epochs'] = int(epochs)
        entry = {'Name': args.name, 'Metadata': metadata}
        if args.collection:
            entry['In Collection'] = args.collection
        if args.top1 is not None or args.top5 is not None:
            metrics = {}
            if args.top1 is not None:
                metrics['Top 1 Accuracy'] = round(args.top1, 2)
            if args.top5 is not None:
                metrics['Top 5 Accuracy'] = round(args.top5, 2)
            entry['Results'] = [{
                'Dataset': args.dataset,
                'Metrics': metrics,
                'Task': TASK
            }]
        entry['Weights'] = weights_entry(out, args.root, args.weights_url)
        entry['Config'] = repo_relative(args.config)
        written = update_metafile(args.metafile, order_entry(entry))
        print(f'{args.metafile}: entry {written["Name"]} written.')
    return out


if __name__ == '__main__':
    main()

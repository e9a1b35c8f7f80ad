"""Neural Collapse plots: t-SNE of pre-logit features, NC curves over epochs.

Uses matplotlib with the non-interactive Agg backend, so it works headless.
"""
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
_NC_TITLE_KEYS = ('top1', 'nc1', 'nc2', 'nc2_equinorm', 'nc3')


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def select_tsne_points(labels,
                       max_classes: int = 20,
                       max_points: int = 2000,
                       seed: int = 0) -> np.ndarray:
    """Indices of the samples to embed: the first ``max_classes`` class
    indices present, then a fixed random subsample of at most
    ``max_points`` (sorted indices)."""
    labels = _to_numpy(labels).astype(np.int64)
    classes = np.unique(labels)[:max_classes]
    idx = np.flatnonzero(np.isin(labels, classes))
    if len(idx) > max_points:
        rng = np.random.RandomState(seed)
        idx = np.sort(rng.choice(idx, max_points, replace=False))
    return idx


def plot_tsne(feats,
              labels,
              out: str,
              metrics: Optional[Dict] = None,
              max_classes: int = 20,
              max_points: int = 2000,
              random_state: int = 0,
              title: Optional[str] = None) -> str:
    """Save a t-SNE scatter of ``feats`` (N x d) coloured by ``labels``.

    Only the first ``max_classes`` classes and at most ``max_points`` samples
    are embedded (``sklearn.manifold.TSNE`` with a fixed ``random_state``).
    ``metrics`` (e.g. the dict of ``mmnckd.apis.analyse``) goes into the
    title. Returns ``out``.
    """
    from sklearn.manifold import TSNE

    feats = _to_numpy(feats).astype(np.float64)
    labels = _to_numpy(labels).astype(np.int64)
    idx = select_tsne_points(labels, max_classes, max_points, random_state)
    if len(idx) < 3:
        raise ValueError(f'need at least 3 points for t-SNE, got {len(idx)}.')
    x, y = feats[idx], labels[idx]
    perplexity = float(min(30.0, max(1.0, (len(idx) - 1) / 3.0)))
    emb = TSNE(
        n_components=2,
        perplexity=perplexity,
        init='pca',
        random_state=random_state).fit_transform(x)

    classes = np.unique(y)
    cmap = plt.get_cmap('tab20' if len(classes) <= 20 else 'gist_ncar')
    fig, ax = plt.subplots(figsize=(7, 6.5))
    for i, c in enumerate(classes):
        m = y == c
        color = cmap(i % 20) if len(classes) <= 20 else cmap(
            i / max(1,
                    len(classes) - 1))
        ax.scatter(
            emb[m, 0],
            emb[m, 1],
            s=8,
            color=color,
            label=str(c),
            alpha=0.8,
            linewidths=0)
    if len(classes) <= 20:
        ax.legend(
            title='class',
            fontsize=7,
            markerscale=2,
            loc='center left',
            bbox_to_anchor=(1.0, 0.5),
            frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    head = title or 't-SNE of pre-logit features'
    head += f' ({len(classes)} classes, {len(idx)} points)'
    if metrics:
        parts = [
            f'{k}={float(metrics[k]):.4g}' for k in _NC_TITLE_KEYS
            if k in metrics
        ]
        head += '\n' + ', '.join(parts)
    ax.set_title(head, fontsize=9)
    fig.tight_layout()
    _ensure_dir(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _ensure_dir(path: str) -> None:
    d = osp.dirname(osp.abspath(path))
    os.makedirs(d, exist_ok=True)


# --------------------------------------------------------------- NC curves
def latest_scalars_file(work_dir: str) -> str:
    """``WORK_DIR/<timestamp>/vis_data/scalars.json`` of the latest timestamp
    folder that has one (test-only runs write a folder without it).

    ``work_dir`` may also be a timestamp folder or a scalars.json itself.
    """
    if osp.isfile(work_dir):
        return work_dir
    direct = osp.join(work_dir, 'vis_data', 'scalars.json')
    if osp.isfile(direct):
        return direct
    stamps = sorted((d for d in os.listdir(work_dir) if _TIMESTAMP.match(d)),
                    reverse=True)
    for d in stamps:
        path = osp.join(work_dir, d, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        f'no <timestamp>/vis_data/scalars.json under {work_dir!r}.')


def load_val_scalars(path: str) -> Dict[str, List]:
    """Validation scalars of an mmengine ``scalars.json`` (one JSON object a
    line) as ``{key: [(epoch, value), ...]}`` sorted by epoch.

    Training lines carry ``iter``/``epoch``/``lr``; validation lines do not,
    and their ``step`` is the epoch. A later line for the same epoch (e.g.
    after a resume) replaces the earlier one.
    """
    by_epoch: Dict[int, Dict] = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a partly written last line of a running job
            if 'iter' in rec or 'lr' in rec or 'step' not in rec:
                continue
            step = int(rec['step'])
            vals = {
                k: float(v)
                for k, v in rec.items()
                if k not in ('step', 'data_time',
                             'time') and isinstance(v, (int, float))
            }
            by_epoch.setdefault(step, {}).update(vals)
    out: Dict[str, List] = {}
    for epoch in sorted(by_epoch):
        for k, v in by_epoch[epoch].items():
            out.setdefault(k, []).append((epoch, v))
    return out


def plot_nc_curves(
    series: Sequence[Dict[str, List]],
    out: str,
    keys: Sequence[str] = ('accuracy/top1', 'nc/nc1', 'nc/nc2', 'nc/nc3'),
    labels: Optional[Sequence[str]] = None,
    log_keys: Sequence[str] = ('nc/nc1', )
) -> str:
    """One subplot per key, one line per run (``series[i]`` as returned by
    :func:`load_val_scalars`), over epochs. ``log_keys`` use a log y-axis
    when all their values are positive. Returns ``out``."""
    labels = list(labels) if labels else [
        f'run{i}' for i in range(len(series))
    ]
    if len(labels) != len(series):
        raise ValueError(f'{len(labels)} labels for {len(series)} runs.')
    n = len(keys)
    ncols = min(n, 2) if n > 1 else 1
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.5 * ncols, 3.8 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        any_pos, all_pos = False, True
        for i, (s, lab) in enumerate(zip(series, labels)):
            pts = s.get(key, [])
            if not pts:
                continue
            ep, val = zip(*pts)
            # the same colour for a run in every subplot
            ax.plot(
                ep,
                val,
                marker='o',
                markersize=3,
                label=lab,
                color=f'C{i % 10}')
            any_pos = True
            all_pos = all_pos and min(val) > 0
        if key in log_keys and any_pos and all_pos:
            ax.set_yscale('log')
        if not any_pos:
            ax.text(
                0.5,
                0.5,
                f'no {key!r} logged',
                ha='center',
                va='center',
                transform=ax.transAxes)
        ax.set_title(key)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
        if any_pos:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis('off')
    fig.tight_layout()
    _ensure_dir(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out

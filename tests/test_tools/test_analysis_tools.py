"""The NC analysis tools on real 1-epoch Omniglot runs: t-SNE plot,
NC curves from mmengine's scalar logs, teacher ranking."""
import importlib.util
import json
import sys

import pytest
from tool_utils import REPO, run


def _load_tool(name):
    path = REPO / 'tools' / 'analysis_tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def two_runs(omniglot_seed0, omniglot_seed1):
    """Two 1-epoch Omniglot students (seeds 0 and 1) as two 'teachers':
    (config, work dir, checkpoint) each."""
    return [run[:3] for run in (omniglot_seed0, omniglot_seed1)]


def _png_size(path):
    from PIL import Image
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.format, im.size


@pytest.mark.slow
def test_nc_analysis_tsne(two_runs, tmp_path):
    cfg, _, ckpt = two_runs[0]
    png, js = tmp_path / 'tsne.png', tmp_path / 'nc.json'
    out = run([
        sys.executable, 'tools/analysis_tools/nc_analysis.py',
        str(cfg),
        str(ckpt), '--tsne',
        str(png), '--tsne-classes', '10', '--out',
        str(js)
    ])
    assert 't-SNE saved to' in out
    fmt, (w, h) = _png_size(png)
    assert fmt == 'PNG' and w >= 300 and h >= 300
    result = json.loads(js.read_text())  # features are not dumped
    assert 'feats' not in result and 'labels' not in result
    assert result['num_samples'] == 1210


@pytest.mark.slow
def test_plot_nc_curves(two_runs, tmp_path):
    png = tmp_path / 'curves.png'
    out = run([
        sys.executable, 'tools/analysis_tools/plot_nc_curves.py',
        str(two_runs[0][1]),
        str(two_runs[1][1]), '--out',
        str(png), '--labels', 'seed0', 'seed1'
    ])
    assert out.count('accuracy/top1 @ epoch 1:') == 2
    assert out.count('nc/nc2 @ epoch 1:') == 2
    fmt, (w, h) = _png_size(png)
    assert fmt == 'PNG' and w >= 400 and h >= 300


@pytest.mark.slow
def test_rank_teachers_agrees_with_analyse(two_runs, tmp_path):
    from mmnckd.apis import analyse
    js = tmp_path / 'rank.json'
    cmd = [
        sys.executable, 'tools/analysis_tools/rank_teachers.py', '--split',
        'test', '--out',
        str(js)
    ]
    for cfg, _, ckpt in two_runs:
        cmd += ['--teachers', str(cfg), str(ckpt)]
    out = run(cmd)
    assert 'Teachers ranked by nc2' in out and 'WARNING' not in out
    ranking = json.loads(js.read_text())['ranking']
    assert [e['rank'] for e in ranking] == [1, 2]
    nc2 = {
        str(ckpt): analyse(str(cfg), str(ckpt), 'test')['nc2']
        for cfg, _, ckpt in two_runs
    }
    assert [e['checkpoint'] for e in ranking] == sorted(nc2, key=nc2.get)
    for e in ranking:
        assert e['nc2'] == pytest.approx(nc2[e['checkpoint']], rel=1e-6)
        assert e['dim'] == 64


def test_rank_order_and_ties():
    rank = _load_tool('rank_teachers').rank
    a = dict(name='a', nc1=3.0, nc2=0.2, nc3=0.80, top1=50.0)
    b = dict(name='b', nc1=1.0, nc2=0.2, nc3=0.90, top1=40.0)
    c = dict(name='c', nc1=2.0, nc2=0.1, nc3=0.10, top1=60.0)
    names = lambda es: [e['name'] for e in es]  # noqa: E731
    assert names(rank([a, b, c], 'nc2')) == ['c', 'b', 'a']  # tie -> nc3 desc
    assert names(rank([a, b, c], 'nc1')) == ['b', 'c', 'a']
    assert names(rank([a, b, c], 'nc3')) == ['b', 'a', 'c']
    assert names(rank([a, b, c], 'top1')) == ['c', 'a', 'b']


def test_scalars_parser(tmp_path):
    from mmnckd.visualization.nc_plots import (latest_scalars_file,
                                               load_val_scalars,
                                               plot_nc_curves)
    work = tmp_path / 'work'
    old = work / '20250101_000000' / 'vis_data'
    new = work / '20250102_000000' / 'vis_data'
    test_only = work / '20250103_000000' / 'vis_data'  # no scalars.json
    for d in (old, new, test_only):
        d.mkdir(parents=True)
    (old / 'scalars.json').write_text('{"step": 1, "accuracy/top1": 1.0}\n')
    lines = [
        dict(lr=0.1, loss=2.0, epoch=1, iter=10, step=10),
        {
            'accuracy/top1': 10.0,
            'nc/nc2': 0.5,
            'data_time': 0.1,
            'time': 0.2,
            'step': 1
        },
        dict(lr=0.05, loss=1.0, epoch=2, iter=20, step=20),
        {
            'accuracy/top1': 20.0,
            'nc/nc2': 0.4,
            'step': 2
        },
    ]
    text = '\n'.join(json.dumps(x) for x in lines) + '\n{"accuracy/to'
    (new / 'scalars.json').write_text(text)  # a half-written last line
    path = latest_scalars_file(str(work))
    assert path == str(new / 'scalars.json')
    s = load_val_scalars(path)
    assert s == {
        'accuracy/top1': [(1, 10.0), (2, 20.0)],
        'nc/nc2': [(1, 0.5), (2, 0.4)]
    }
    png = tmp_path / 'c.png'
    plot_nc_curves([s, load_val_scalars(str(old / 'scalars.json'))],
                   str(png),
                   labels=['new', 'old'])
    assert png.stat().st_size > 1000
    with pytest.raises(FileNotFoundError):
        latest_scalars_file(str(tmp_path / 'work' / '20250103_000000'))


def test_rank_teachers_warns_on_nc1_with_different_dims(
        monkeypatch, capsys, tmp_path):
    import torch
    tool = _load_tool('rank_teachers')

    def fake_analyse(cfg, ckpt, split, which, cfg_options, keep_feats):
        dim = 64 if ckpt == 'small.pth' else 256
        return dict(
            top1=50.0,
            nc1=1.0 if dim == 64 else 2.0,
            nc2=0.3,
            nc2_equinorm=0.1,
            nc3=0.5,
            num_samples=4,
            split=split,
            feats=torch.zeros(4, dim),
            labels=torch.zeros(4))

    monkeypatch.setattr(tool, 'analyse', fake_analyse)
    js = tmp_path / 'r.json'
    tool.main([
        '--teachers', 'a.py', 'big.pth', '--teachers', 'b.py', 'small.pth',
        '--by', 'nc1', '--out',
        str(js)
    ])
    out = capsys.readouterr().out
    assert 'WARNING: feature dims differ ([64, 256])' in out
    ranking = json.loads(js.read_text())['ranking']
    assert [e['checkpoint'] for e in ranking] == ['small.pth', 'big.pth']
    tool.main(
        ['--teachers', 'a.py', 'big.pth', '--teachers', 'b.py',
         'small.pth'])  # by nc2: no warning
    assert 'WARNING' not in capsys.readouterr().out

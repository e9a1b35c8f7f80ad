"""mmnckd's checkpoint loaders: every mmengine ``CheckpointLoader`` scheme
loads with ``torch.load(weights_only=True)``, a URL as much as a local path,
whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says, with errors that name the
file and say why.

Real files over a real HTTP server (``http.server`` on 127.0.0.1 in a
thread) and a real torch hub cache in a temporary ``TORCH_HOME``.
"""
import functools
import hashlib
import io
import os
import os.path as osp
import pickle
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from dist_utils import free_port
from torch import nn

import mmnckd  # noqa: F401  (registers the loaders)
from mmnckd.utils import safe_load
from mmnckd.utils.safe_load import (CheckpointDownloadError,
                                    CorruptCheckpointError,
                                    UnsafeCheckpointError)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _OpenFile:
    """Unpickling it calls ``open(marker, 'w')``: creates the marker."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


class _System:
    """Unpickling it calls ``os.system('touch marker')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


EVIL = {
    'open': (_OpenFile, r'GLOBAL (io|builtins|_io)\.open'),
    'os_system': (_System, r'GLOBAL (posix|nt|os)\.system'),
}


def _save_evil(path, marker, kind):
    cls, _ = EVIL[kind]
    torch.save({
        'state_dict': {
            'w': torch.ones(2)
        },
        'meta': cls(marker)
    }, str(path))


def _good_checkpoint():
    torch.manual_seed(0)
    linear = nn.Linear(3, 2)
    return {
        'state_dict': linear.state_dict(),
        'meta': {
            'epoch': 3,
            'mmengine_version': '0.10.7'
        }
    }


def _assert_same_state(loaded, saved):
    assert loaded.keys() == saved.keys()
    for key in saved:
        assert torch.equal(loaded[key], saved[key]), key


# ---------------------------------------------------------------- fixtures


class _Handler(SimpleHTTPRequestHandler):
    """Serves a directory; counts requests; ``/short/NAME`` announces the
    full ``Content-Length`` of NAME but sends only half of it."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith('/short/'):
            data = open(osp.join(self.directory, self.path[7:]), 'rb').read()
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A ThreadingHTTPServer on 127.0.0.1 serving ``tmp_path/served``."""
    served = tmp_path / 'served'
    served.mkdir()
    httpd = ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(_Handler, directory=str(served)))
    httpd.requests = []
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.dir = served
    httpd.url = f'http://127.0.0.1:{httpd.server_address[1]}'
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """``TORCH_HOME`` and ``torch.hub.set_dir`` point into ``tmp_path``;
    both are restored afterwards. Returns the checkpoint cache directory."""
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    # restore whatever torch.hub had (possibly "unset") after the test
    monkeypatch.setattr(torch.hub, '_hub_dir', torch.hub._hub_dir)
    torch.hub.set_dir(str(home / 'hub'))
    return home / 'hub' / 'checkpoints'


# ------------------------------------------------------------ registration


def test_every_checkpoint_scheme_is_ours():
    from mmengine.runner import CheckpointLoader
    schemes = CheckpointLoader._schemes
    for prefix in ('', 'http://', 'https://', 'torchvision://', 'modelzoo://',
                   'open-mmlab://', 'openmmlab://', 'mmcls://', 'pavi://',
                   r'(\S+\:)?s3://', r'(\S+\:)?petrel://'):
        assert schemes[prefix].__module__ == safe_load.__name__, prefix
    get = CheckpointLoader._get_checkpoint_loader
    assert get('http://h/a.pth') is safe_load.load_from_http
    assert get('https://h/a.pth') is safe_load.load_from_http
    assert get('/some/where/a.pth') is safe_load.load_from_local
    assert get('work_dirs/epoch_1.pth') is safe_load.load_from_local
    # idempotent: registering again changes nothing
    before = dict(schemes)
    safe_load.register_safe_checkpoint_loaders()
    assert dict(CheckpointLoader._schemes) == before


# ------------------------------------------------------- malicious pickles


@pytest.mark.parametrize('kind', sorted(EVIL))
@pytest.mark.parametrize(
    'force_env', [False, True], ids=['default', 'force_no_weights_only'])
def test_malicious_url_refused(server, torch_home, tmp_path, monkeypatch, kind,
                               force_env):
    from mmengine.runner import CheckpointLoader, load_checkpoint
    if force_env:
        monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'marker'
    _save_evil(server.dir / 'evil.pth', marker, kind)
    url = f'{server.url}/evil.pth'
    cached = str(torch_home / 'evil.pth')
    reason = EVIL[kind][1]

    with pytest.raises(UnsafeCheckpointError, match=reason) as err:
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert isinstance(err.value, pickle.UnpicklingError)
    msg = str(err.value)
    assert url in msg and cached in msg
    assert 'weights_only=True' in msg
    assert 'a pickle that imports or calls other code is never loaded' in msg
    assert not marker.exists()

    # the same through mmengine.runner.load_checkpoint (Runner's load_from,
    # mmpretrain.get_model(pretrained=URL)), now from the cache
    with pytest.raises(pickle.UnpicklingError, match=reason) as err:
        load_checkpoint(nn.Linear(3, 2), url, map_location='cpu')
    assert url in str(err.value) and cached in str(err.value)
    assert not marker.exists()
    assert osp.isfile(cached)  # downloaded, never unpickled unsafely


@pytest.mark.parametrize('kind', sorted(EVIL))
def test_malicious_local_file_refused_with_force_env(tmp_path, monkeypatch,
                                                     kind):
    from mmengine.runner import CheckpointLoader, load_checkpoint
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.pth'
    _save_evil(path, marker, kind)
    for load in (lambda: CheckpointLoader.load_checkpoint(str(path)),
                 lambda: load_checkpoint(nn.Linear(3, 2), str(path))):
        with pytest.raises(UnsafeCheckpointError, match=EVIL[kind][1]) as err:
            load()
        assert str(path) in str(err.value)
        assert 'weights_only=True' in str(err.value)
        assert not marker.exists()


def test_controls_show_what_is_prevented(server, torch_home, tmp_path,
                                         monkeypatch):
    """Without mmnckd's loaders the same files run their code: mmengine's own
    ``load_from_http`` (``weights_only=False``), and a ``torch.load`` that
    does not pass ``weights_only`` once the environment variable is set."""
    from mmengine.runner.checkpoint import load_from_http as mmengine_http
    assert mmengine_http is not safe_load.load_from_http
    marker = tmp_path / 'ran_over_http'
    _save_evil(server.dir / 'control.pth', marker, 'open')
    mmengine_http(
        f'{server.url}/control.pth',
        map_location='cpu',
        model_dir=str(tmp_path / 'mmengine_cache'))
    assert marker.exists()

    marker = tmp_path / 'ran_locally'
    _save_evil(tmp_path / 'control.pth', marker, 'open')
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.warns(UserWarning, match='TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        torch.load(str(tmp_path / 'control.pth'))
    assert marker.exists()


def test_get_model_pretrained_url(server, torch_home, tmp_path):
    from mmengine.config import Config
    from mmpretrain import get_model
    cfg = Config(
        dict(
            model=dict(
                type='ImageClassifier',
                backbone=dict(type='LeNet5', num_classes=4))))
    saved = {
        f'backbone.{k}': v
        for k, v in get_model(cfg).backbone.state_dict().items()
    }
    torch.save({'state_dict': saved, 'meta': {}}, server.dir / 'lenet.pth')
    model = get_model(cfg, pretrained=f'{server.url}/lenet.pth')
    _assert_same_state(
        {
            f'backbone.{k}': v
            for k, v in model.backbone.state_dict().items()
        }, saved)

    marker = tmp_path / 'marker'
    _save_evil(server.dir / 'lenet_evil.pth', marker, 'os_system')
    with pytest.raises(UnsafeCheckpointError, match='lenet_evil.pth'):
        get_model(cfg, pretrained=f'{server.url}/lenet_evil.pth')
    assert not marker.exists()


# ------------------------------------------------------ good checkpoints


def test_good_checkpoint_over_http_then_from_cache(server, torch_home):
    from mmengine.runner import CheckpointLoader, load_checkpoint
    ckpt = _good_checkpoint()
    torch.save(ckpt, server.dir / 'good.pth')
    url = f'{server.url}/good.pth'

    loaded = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    _assert_same_state(loaded['state_dict'], ckpt['state_dict'])
    assert loaded['meta'] == ckpt['meta']
    assert server.requests == ['/good.pth']
    cached = torch_home / 'good.pth'
    assert cached.read_bytes() == (server.dir / 'good.pth').read_bytes()
    # renamed into place: no .partial file left behind
    assert [p.name for p in torch_home.iterdir()] == ['good.pth']

    # second load: served file gone -- it must come from the cache
    (server.dir / 'good.pth').unlink()
    model = nn.Linear(3, 2)
    load_checkpoint(model, url, map_location='cpu')
    _assert_same_state(model.state_dict(), ckpt['state_dict'])
    assert server.requests == ['/good.pth']


def test_good_checkpoint_with_mmengine_runtime_types(server, torch_home):
    """A training checkpoint's message hub (HistoryBuffer, numpy) loads."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner import CheckpointLoader
    hub = HistoryBuffer()
    hub.update(1.5)
    torch.save(
        {
            'state_dict': _good_checkpoint()['state_dict'],
            'message_hub': {
                'loss': hub,
                'stat': HistoryBuffer.mean,
                'lr': np.float64(0.1)
            }
        }, server.dir / 'train.pth')
    loaded = CheckpointLoader.load_checkpoint(f'{server.url}/train.pth')
    assert loaded['message_hub']['loss'].current() == 1.5
    assert loaded['message_hub']['lr'] == 0.1


def test_hash_in_file_name_is_checked(server, torch_home):
    from mmengine.runner import CheckpointLoader
    ckpt = _good_checkpoint()
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    good = f'tiny_20260101-{sha[:8]}.pth'
    (server.dir / good).write_bytes(data)
    loaded = CheckpointLoader.load_checkpoint(f'{server.url}/{good}')
    _assert_same_state(loaded['state_dict'], ckpt['state_dict'])

    wrong = '0' * 8 if not sha.startswith('0' * 8) else 'f' * 8
    bad = f'tiny_20260101-{wrong}.pth'
    (server.dir / bad).write_bytes(data)
    with pytest.raises(CheckpointDownloadError, match='hash check') as err:
        CheckpointLoader.load_checkpoint(f'{server.url}/{bad}')
    assert f'{server.url}/{bad}' in str(err.value)
    assert sorted(p.name for p in torch_home.iterdir()) == [good]


def test_incomplete_download_is_not_cached(server, torch_home):
    from mmengine.runner import CheckpointLoader
    torch.save(_good_checkpoint(), server.dir / 'good.pth')
    url = f'{server.url}/short/good.pth'
    with pytest.raises(CheckpointDownloadError, match='incomplete') as err:
        CheckpointLoader.load_checkpoint(url)
    assert url in str(err.value)
    assert not torch_home.exists() or list(torch_home.iterdir()) == []


def test_truncated_file_served_names_url_and_cache(server, torch_home):
    from mmengine.runner import CheckpointLoader
    torch.save(_good_checkpoint(), server.dir / 'whole.pth')
    data = (server.dir / 'whole.pth').read_bytes()
    (server.dir / 'half.pth').write_bytes(data[:len(data) // 2])
    url = f'{server.url}/half.pth'
    with pytest.raises(CorruptCheckpointError, match='truncated') as err:
        CheckpointLoader.load_checkpoint(url)
    cached = str(torch_home / 'half.pth')
    assert url in str(err.value) and cached in str(err.value)
    assert f'delete {cached!r} to download it again' in str(err.value)


def test_missing_url_names_it(server, torch_home):
    from mmengine.runner import CheckpointLoader
    url = f'{server.url}/nowhere.pth'
    with pytest.raises(CheckpointDownloadError, match='404') as err:
        CheckpointLoader.load_checkpoint(url)
    assert url in str(err.value)
    assert not torch_home.exists() or list(torch_home.iterdir()) == []


def test_legacy_zipped_checkpoint_over_http(server, torch_home):
    """torch.hub's legacy case: a zip holding one pre-1.6 torch.save file."""
    from mmengine.runner import CheckpointLoader
    ckpt = _good_checkpoint()
    buf = io.BytesIO()
    torch.save(ckpt, buf, _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(server.dir / 'legacy.pth', 'w') as zf:
        zf.writestr('inner.pth', buf.getvalue())
    loaded = CheckpointLoader.load_checkpoint(f'{server.url}/legacy.pth')
    _assert_same_state(loaded['state_dict'], ckpt['state_dict'])
    assert sorted(p.name for p in torch_home.iterdir()) == ['legacy.pth']


# ------------------------------------------------------ broken local files


def test_local_missing_empty_truncated(tmp_path):
    from mmengine.runner import CheckpointLoader, load_checkpoint
    with pytest.raises(FileNotFoundError, match='can not be found'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'missing.pth'))

    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(
            CorruptCheckpointError, match=r'is empty \(0 bytes\)') as err:
        CheckpointLoader.load_checkpoint(str(empty))
    assert str(empty) in str(err.value)

    buf = io.BytesIO()
    torch.save(_good_checkpoint(), buf)
    data = buf.getvalue()
    legacy = io.BytesIO()
    torch.save(
        _good_checkpoint(), legacy, _use_new_zipfile_serialization=False)
    cases = {
        'zip_10b': data[:10],
        'zip_half': data[:len(data) // 2],
        'zip_minus_1': data[:-1],
        'legacy_half': legacy.getvalue()[:len(legacy.getvalue()) // 2],
        'garbage': b'this is not a checkpoint'
    }
    for name, payload in cases.items():
        path = tmp_path / f'{name}.pth'
        path.write_bytes(payload)
        with pytest.raises(
                CorruptCheckpointError, match='truncated or corrupted') as err:
            load_checkpoint(nn.Linear(3, 2), str(path))
        assert str(path) in str(err.value), name
        assert f'({len(payload)} bytes)' in str(err.value), name


def test_distiller_teacher_url_refused(server, torch_home, tmp_path):
    """The distiller's ``teacher_ckpt`` goes through ``CheckpointLoader``:
    a URL is refused before any teacher weights are touched."""
    from types import SimpleNamespace

    from mmpretrain.registry import MODELS
    marker = tmp_path / 'marker'
    _save_evil(server.dir / 'teacher.pth', marker, 'os_system')
    url = f'{server.url}/teacher.pth'
    load_teacher = MODELS.get('NCKDDistiller').load_teacher
    with pytest.raises(RuntimeError, match='model.teacher_ckpt=') as err:
        load_teacher(SimpleNamespace(), url)  # refused before self is used
    assert isinstance(err.value.__cause__, UnsafeCheckpointError)
    assert url in str(err.value) and 'weights_only=True' in str(err.value)
    assert not marker.exists()


# ------------------------------------------------------------ distributed

_RANK_SCRIPT = r'''
import os, sys, torch, torch.distributed as dist
import mmnckd  # noqa: F401
from mmengine.runner import CheckpointLoader
dist.init_process_group('gloo', init_method='env://')
ck = CheckpointLoader.load_checkpoint(sys.argv[1], map_location='cpu')
torch.save(ck['state_dict'], sys.argv[2] + f'/rank{dist.get_rank()}.pth')
dist.barrier()
dist.destroy_process_group()
'''


@pytest.mark.slow
def test_distributed_rank0_downloads_first(server, tmp_path):
    """Two gloo ranks load one URL: one download (rank 0), both get it."""
    ckpt = _good_checkpoint()
    torch.save(ckpt, server.dir / 'dist.pth')
    script = tmp_path / 'rank.py'
    script.write_text(_RANK_SCRIPT)
    out = tmp_path / 'out'
    out.mkdir()
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE='2',
            LOCAL_RANK=str(rank),
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=port,
            TORCH_HOME=str(tmp_path / 'th'))
        procs.append(
            subprocess.Popen([
                sys.executable,
                str(script), f'{server.url}/dist.pth',
                str(out)
            ],
                             cwd=REPO,
                             env=env,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             text=True))
    for proc in procs:
        log = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, log[-3000:]
    assert server.requests == ['/dist.pth']
    for rank in (0, 1):
        _assert_same_state(
            torch.load(out / f'rank{rank}.pth', weights_only=True),
            ckpt['state_dict'])
    assert (tmp_path / 'th' / 'hub' / 'checkpoints' / 'dist.pth').is_file()

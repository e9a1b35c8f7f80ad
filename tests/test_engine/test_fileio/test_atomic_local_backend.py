"""AtomicLocalBackend: a checkpoint write that fails half way (full disk,
quota, file size limit) leaves neither a partial file nor a temporary one,
keeps the previous file byte for byte and says which file, how many bytes
were needed and free, and what to do.

Unit tests on simulated failures (a write that stops half way, an fsync that
fails) and on a real ``EFBIG`` (``RLIMIT_FSIZE``); then tools/train.py on an
Omniglot subset whose file size limit drops after epoch 2, as a disk that
fills up: the epoch-3 checkpoint is refused with that message, epoch_2.pth
and ``last_checkpoint`` stay valid, and ``--resume`` from a truncated
checkpoint names the file.
"""
import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.runner.checkpoint import save_checkpoint
from tool_utils import ENV, REPO, STUDENT, write_config

import mmnckd  # noqa: F401  (registers the backend)
from mmnckd.engine.fileio import (ATOMIC_LOCAL, AtomicLocalBackend,
                                  AtomicWriteError)
from mmnckd.engine.fileio import atomic_local_backend as module
from mmnckd.utils import safe_torch_load

ATOMIC = dict(backend=ATOMIC_LOCAL)
PAYLOAD = bytes(range(256)) * 400  # 102400 bytes


def _leftovers(directory):
    return sorted(
        p.name for p in Path(directory).iterdir() if p.name.endswith('.tmp'))


def test_registered_and_put_writes_exact_bytes(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=ATOMIC)
    assert type(backend) is AtomicLocalBackend
    target = tmp_path / 'new' / 'dir' / 'epoch_1.pth'  # parents created
    backend.put(PAYLOAD, target)
    assert target.read_bytes() == PAYLOAD
    backend.put(b'second', target)  # replaces
    assert target.read_bytes() == b'second'
    backend.put_text('h\u00e9llo\n', tmp_path / 'a.txt')
    assert (tmp_path / 'a.txt').read_bytes() == 'h\u00e9llo\n'.encode()
    backend.put_text('x', tmp_path / 'b.txt', encoding='utf-16')
    assert (tmp_path / 'b.txt').read_text(encoding='utf-16') == 'x'
    assert _leftovers(target.parent) == [] and _leftovers(tmp_path) == []
    # the permissions a plain open() would give, not mkstemp's 0o600
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


class _StopsHalfWay:
    """A file whose ``write`` writes half of the bytes, then fails as a full
    disk does; records the temporary file's size at that moment."""

    seen = []

    def __init__(self, real):
        self.real = real

    def write(self, data):
        self.real.write(data[:len(data) // 2])
        self.real.flush()
        _StopsHalfWay.seen.append(
            (self.real.name, os.path.getsize(self.real.name)))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def _half_write(monkeypatch):
    _StopsHalfWay.seen = []
    monkeypatch.setattr(
        module,
        'open',
        lambda *a, **k: _StopsHalfWay(open(*a, **k)),
        raising=False)


def _failing_fsync(monkeypatch):
    monkeypatch.setattr(
        module.os, 'fsync', lambda fd:
        (_
         for _ in ()).throw(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))))


@pytest.mark.parametrize(
    'existing', [None, b'old complete checkpoint'],
    ids=['new-file', 'previous-file'])
def test_write_stopping_half_way_leaves_nothing_partial(
        tmp_path, monkeypatch, existing):
    target = tmp_path / 'epoch_3.pth'
    if existing is not None:
        target.write_bytes(existing)
    _half_write(monkeypatch)
    with pytest.raises(AtomicWriteError) as err:
        get_file_backend(
            str(tmp_path), backend_args=ATOMIC).put(PAYLOAD, target)
    # the failure did happen half way, into a temporary file ...
    [(tmp, size)] = _StopsHalfWay.seen
    assert Path(tmp).parent == tmp_path and tmp != str(target)
    assert size == len(PAYLOAD) // 2
    # ... which is gone; the target is absent or byte-identical
    assert _leftovers(tmp_path) == []
    if existing is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == existing
    e = err.value
    assert isinstance(e, OSError) and e.errno == errno.ENOSPC
    assert e.filename == str(target)
    msg = str(e)
    assert repr(str(target)) in msg and 'ENOSPC' in msg
    assert f'needs {len(PAYLOAD)} bytes' in msg
    assert 'bytes are free on the file system of' in msg
    assert 'shutil.disk_usage' in msg
    assert ('the previous' in msg) == (existing is not None)
    assert '--work-dir' in msg and 'Free space in' in msg
    assert msg.startswith('[Errno 28] Could not write') and msg.endswith('.')


def test_failed_fsync_names_quota_and_keeps_previous(tmp_path, monkeypatch):
    target = tmp_path / 'epoch_2.pth'
    target.write_bytes(b'previous')
    _failing_fsync(monkeypatch)
    with pytest.raises(AtomicWriteError, match='EDQUOT') as err:
        AtomicLocalBackend().put_text('new text', target)
    assert target.read_bytes() == b'previous'
    assert _leftovers(tmp_path) == []
    assert 'quota' in str(err.value) and 'needs 8 bytes' in str(err.value)


def test_stock_local_backend_leaves_the_partial_file(tmp_path, monkeypatch):
    """The control: the same failure through mmengine's LocalBackend leaves
    a half-written file under the final name (what the atomic backend
    prevents)."""
    import mmengine.fileio.backends.local_backend as local
    _StopsHalfWay.seen = []
    monkeypatch.setattr(
        local,
        'open',
        lambda *a, **k: _StopsHalfWay(open(*a, **k)),
        raising=False)
    target = tmp_path / 'epoch_1.pth'
    with pytest.raises(OSError):
        LocalBackend().put(PAYLOAD, target)
    assert target.stat().st_size == len(PAYLOAD) // 2


def test_mmengine_save_checkpoint_through_backend_args(tmp_path, monkeypatch):
    """``mmengine.runner.save_checkpoint(..., backend_args=...)`` -- what
    ``CheckpointHook`` calls -- writes complete, loadable files and none on
    a failure."""
    ckpt = dict(state_dict=dict(w=torch.arange(10000.)), meta=dict(epoch=1))
    good = tmp_path / 'epoch_1.pth'
    save_checkpoint(ckpt, str(good), backend_args=ATOMIC)
    assert torch.equal(
        safe_torch_load(good)['state_dict']['w'], ckpt['state_dict']['w'])
    _half_write(monkeypatch)
    with pytest.raises(AtomicWriteError, match='epoch_2.pth'):
        save_checkpoint(
            ckpt, str(tmp_path / 'epoch_2.pth'), backend_args=ATOMIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']


def test_real_file_size_limit_efbig(tmp_path):
    """A real EFBIG: this process's RLIMIT_FSIZE below the payload size."""
    resource = pytest.importorskip('resource')
    target = tmp_path / 'big.pth'
    target.write_bytes(b'previous')
    limit = len(PAYLOAD) // 3
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        with pytest.raises(AtomicWriteError) as err:
            AtomicLocalBackend().put(PAYLOAD, target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert err.value.errno == errno.EFBIG
    assert target.read_bytes() == b'previous'
    assert _leftovers(tmp_path) == []
    msg = str(err.value)
    assert f'RLIMIT_FSIZE, `ulimit -f`) is {limit} bytes' in msg
    assert f'needs {len(PAYLOAD)} bytes' in msg and str(target) in msg


# ------------------------------------------------- through tools/train.py

# A hook that makes the disk "fill up" after the epoch-2 checkpoint: from
# then on no file of the process may grow beyond half that checkpoint.
LIMIT_HOOK = '''
import os.path as osp
import resource
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class FileSizeLimitHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved

    def __init__(self, after_epoch):
        self.after_epoch = after_epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 != self.after_epoch:
            return
        ckpt = osp.join(runner.work_dir, f'epoch_{self.after_epoch}.pth')
        limit = osp.getsize(ckpt) // 2
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        print(f'RLIMIT_FSIZE now {limit} bytes', flush=True)
'''

SUBSET = '''
train_dataloader = dict(batch_size=16, dataset=dict(indices=32))
custom_imports = dict(imports=['mmnckd', 'fsize_limit_hook'])
custom_hooks = [dict(type='FileSizeLimitHook', after_epoch=2)]
'''


def _train(args, tmp_path):
    env = dict(
        os.environ,
        **ENV,
        PYTHONUNBUFFERED='1',
        PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    proc = subprocess.run([sys.executable, 'tools/train.py', *map(str, args)],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300,
                          env=env)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def disk_full_run(tmp_path_factory):
    """3 epochs of the Omniglot student on 32 images; files are limited to
    half a checkpoint after epoch 2: (config, work dir, rc, output)."""
    tmp = tmp_path_factory.mktemp('disk_full')
    (tmp / 'fsize_limit_hook.py').write_text(textwrap.dedent(LIMIT_HOOK))
    cfg = write_config(tmp / 'cfg.py', STUDENT, extra=SUBSET, epochs=3)
    rc, out = _train([cfg, '--work-dir', tmp / 'work', '--no-validate'], tmp)
    return cfg, tmp / 'work', rc, out


@pytest.mark.slow
def test_training_on_a_full_disk_keeps_the_last_good_checkpoint(disk_full_run):
    cfg, work, rc, out = disk_full_run
    assert 'RLIMIT_FSIZE now' in out, out[-3000:]
    assert rc != 0, out[-3000:]
    target = work / 'epoch_3.pth'
    assert 'AtomicWriteError' in out and 'EFBIG' in out, out[-3000:]
    assert f'Could not write {str(target)!r}' in out
    assert 'It needs ' in out and 'bytes are free on the file system' in out
    assert '`ulimit -f unlimited`' in out
    # no partial epoch_3.pth, no temporary file; max_keep_ckpts=2 removed
    # epoch_1.pth through the backend before the failed save
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_2.pth']
    assert _leftovers(work) == []
    last = (work / 'last_checkpoint').read_text().strip()
    assert last == str(work / 'epoch_2.pth')
    ckpt = safe_torch_load(last, map_location='cpu')
    assert ckpt['meta']['epoch'] == 2 and ckpt['state_dict']


@pytest.mark.slow
def test_resume_from_a_truncated_checkpoint_names_the_file(
        disk_full_run, tmp_path):
    """What a partial epoch_N.pth written by mmengine's stock backend gives
    on --resume: an error naming the file, not a raw zip-reader error."""
    cfg, work, _, _ = disk_full_run
    data = (work / 'epoch_2.pth').read_bytes()
    truncated = tmp_path / 'epoch_3.pth'
    truncated.write_bytes(data[:len(data) // 2])
    plain = write_config(
        tmp_path / 'plain.py',
        STUDENT,
        extra='train_dataloader = dict(dataset=dict('
        'indices=32))\n')
    rc, out = _train(
        [plain, '--work-dir', tmp_path / 'work', '--resume', truncated],
        tmp_path)
    assert rc != 0
    last = out.strip().splitlines()[-1]
    assert last.startswith('mmnckd.utils.safe_load.CorruptCheckpointError')
    assert f"Checkpoint '{truncated}' ({len(data) // 2} bytes) is " \
        'truncated or corrupted' in last
    assert 're-save or re-download it' in last
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()

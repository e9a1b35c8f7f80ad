"""RandomStateHook: every process's random state travels in the checkpoint
(in types ``weights_only`` loads) and is put back on --resume, so a run
killed with SIGKILL in its last epoch (the second) and resumed ends in a
checkpoint bit-identical to the uninterrupted run's, with RandomCrop and a
validation after every epoch, on 1 and on 2 processes (where the ranks stay
identical, before and after the resume), and with CRD's memory."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from dist_utils import free_port
from tool_utils import ENV, NCKD, REPO, nckd_config, run

from mmnckd.engine.hooks.random_state_hook import (get_random_state,
                                                   set_random_state)


def _draw():
    return (random.random(), float(np.random.rand()), float(torch.rand(
        ())), float(np.random.randn()))


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    torch.save(dict(random_state=get_random_state()), tmp_path / 's.pth')
    expected = _draw()
    _draw()  # move every generator on
    state = torch.load(tmp_path / 's.pth', weights_only=True)['random_state']
    set_random_state(state)
    assert _draw() == expected
    # the control: without restoring, the numbers differ
    assert _draw() != expected


def _final_state(path):
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    return ckpt['state_dict'], ckpt['optimizer'], ckpt['meta']['epoch']


def _assert_identical(a, b):
    state_a, optim_a, epoch_a = _final_state(a)
    state_b, optim_b, epoch_b = _final_state(b)
    assert epoch_a == epoch_b == 2
    assert state_a.keys() == state_b.keys()
    differ = [k for k in state_a if not torch.equal(state_a[k], state_b[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:5]}'
    moments_a = optim_a['state']
    moments_b = optim_b['state']
    assert moments_a.keys() == moments_b.keys()
    for k in moments_a:
        for name, value in moments_a[k].items():
            assert torch.equal(
                torch.as_tensor(value), torch.as_tensor(moments_b[k][name]))


def _command(cfg, work, nproc, *args):
    if nproc == 1:
        return [
            sys.executable, 'tools/train.py',
            str(cfg), '--work-dir',
            str(work), *args
        ]
    return [
        'bash', 'tools/dist_train.sh',
        str(cfg),
        str(nproc), '--work-dir',
        str(work), *args
    ]


def _stat(pid):
    """The fields of /proc/<pid>/stat after the command name (state, ppid,
    ...), or None once the process has ended."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError:
        return None


def _descendants(pid):
    """Every live process below ``pid`` (from /proc)."""
    children = {}
    for entry in Path('/proc').glob('[0-9]*'):
        fields = _stat(entry.name)
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _alive(pid):
    """Running (not ended, not a zombie waiting to be reaped)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != 'Z'


def _kill_tree(proc):
    """SIGKILL ``proc``, its process group and every process below it, and
    wait until none of them runs. torch's launcher starts each worker in a
    session of its own, so killing the launcher's group alone leaves the
    workers training on (and writing checkpoints into the work dir the
    resumed run then uses)."""
    pids = _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group has ended (e.g. the run failed)
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline:
        running = [pid for pid in pids if _alive(pid)]
        if not running:
            return
        time.sleep(0.1)
    raise AssertionError(f'processes {running} survived SIGKILL')


def _run_and_kill(cmd, work, env, marker='Epoch(train) [2][ 5/'):
    """Start ``cmd``; SIGKILL it and all its processes once the log shows an
    iteration of epoch 2 (after epoch_1.pth was written)."""
    log = open(work.parent / 'killed.log', 'w')
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.time() + 600
    try:
        while time.time() < deadline:
            text = (work.parent / 'killed.log').read_text()
            if marker in text:
                break
            assert proc.poll() is None, text[-3000:]
            time.sleep(0.2)
        else:
            raise AssertionError('epoch 2 never started')
    finally:
        _kill_tree(proc)
        log.close()
    assert (work / 'epoch_1.pth').is_file()
    assert not (work / 'epoch_2.pth').exists()


# NCKD on top of CRD: the run also carries CRD's contrastive memory (one
# momentum-updated row per training sample for each network) and its
# normalising constants, which must come back exactly with --resume
CRD_NCKD = 'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64-crd_omniglot.py'
# every third training image (all 242 classes; 19 iterations of 64 per
# epoch on 1 process, 10 per rank on 2) and every fourth test image: the
# same checks as on the whole split in a third of the time; the log every
# 5 iterations, so that the kill lands in the middle of epoch 2. CRD's
# memory keeps one row per image of the full split.
SUBSET = ('train_dataloader = dict(dataset=dict('
          'indices=list(range(0, 3630, 3))))\n'
          'val_dataloader = dict(dataset=dict('
          'indices=list(range(0, 1210, 4))))\n')


@pytest.mark.slow
@pytest.mark.parametrize(
    'base,nproc,with_hook', [(NCKD, 1, True), (NCKD, 2, True),
                             (NCKD, 1, False), (CRD_NCKD, 2, True)],
    ids=['1-process', '2-processes', 'control', 'crd-memory-2-processes'])
def test_kill_and_resume_is_bit_identical(teacher_ckpt, tmp_path, base, nproc,
                                          with_hook):
    """The control, without the hook, diverges (it did before the hook)."""
    random_state = '' if with_hook else ', random_state=None'
    extra = ('train_cfg = dict(max_epochs=2, val_interval=1)\n' + SUBSET +
             f'default_hooks = dict(logger=dict(interval=5){random_state})\n')
    if nproc > 1:  # and the ranks stay identical, before and after resume
        extra += ("custom_hooks = [dict(type='TeacherPrototypeHook'), "
                  "dict(type='RankConsistencyHook')]\n")
    cfg = nckd_config(
        tmp_path / 'cfg.py', teacher_ckpt, epochs=2, extra=extra, base=base)
    env = dict(
        os.environ,
        PYTHONUNBUFFERED='1',
        PYTHON=sys.executable,
        PORT=str(free_port()),
        **ENV)

    full = tmp_path / 'full' / 'work'
    out_full = run(_command(cfg, full, nproc), env=env)

    resumed = tmp_path / 'resumed' / 'work'
    resumed.mkdir(parents=True)
    _run_and_kill(_command(cfg, resumed, nproc), resumed, env)
    crd_key = 'distill_losses.loss_crd.memory.student'
    if base == CRD_NCKD:  # the memory the resumed run starts from
        at_kill = _final_state(resumed / 'epoch_1.pth')[0][crd_key]
    out = run(_command(cfg, resumed, nproc, '--resume'), env=env)
    assert 'Teacher prototypes restored from the checkpoint' in out
    assert 'Computing teacher prototypes' not in out
    for text in (out_full, out) if nproc > 1 else ():
        assert f'Model state identical on {nproc} ranks' in text
        assert 'Model state differs' not in text
    if not with_hook:
        assert 'Random state restored' not in out
        with pytest.raises(AssertionError, match='tensors differ'):
            _assert_identical(full / 'epoch_2.pth', resumed / 'epoch_2.pth')
        return
    assert 'Random state restored from the checkpoint.' in out
    _assert_identical(full / 'epoch_2.pth', resumed / 'epoch_2.pth')
    if base == CRD_NCKD:
        # the memory was saved, restored and moved on: rows of epoch 2
        # differ from those of the epoch_1 checkpoint the run resumed from
        at_end = _final_state(resumed / 'epoch_2.pth')[0][crd_key]
        assert at_end.shape == (3630, 128)
        assert not torch.equal(at_kill, at_end)

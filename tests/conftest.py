"""Shared fixtures of the mmnckd test suite.

Layout: ``tests/`` mirrors the package (``tests/test_models/test_losses/`` for
``mmnckd/models/losses/`` and so on); the command-line tools are tested in
``tests/test_tools/``, the configs in ``tests/test_configs.py``. The folders
have no ``__init__.py``: pytest imports each test file under its basename
(the default ``prepend`` import mode), so basenames must stay unique across
the tree. ``pytest.ini`` puts ``tests/`` on ``sys.path`` for the two helper
modules, ``small_models`` (tiny classifiers and distillers, in process) and
``tool_utils`` (running the tools as a user does).

Marker: ``slow`` marks every test that launches a subprocess (tools/train.py,
tools/test.py, dist_train.sh, torch.multiprocessing, the tool scripts) or
needs one of the training runs below; ``pytest -m "not slow"`` is the fast
unit run, a plain ``pytest`` runs everything.

Session fixtures, each built once on first use and shared read-only (a test
that writes into a run's work dir works on a ``shutil.copytree`` copy):

* ``teacher_ckpt``: a randomly initialised teacher checkpoint of
  ``configs/teachers/resnet18w32_1xb64_omniglot.py`` (NCKD works with any
  teacher, so no teacher is trained).
* ``nckd_run``: one epoch of NCKD on Omniglot through ``tools/train.py``
  with that teacher: (config, work dir, training output).
* ``exported``: its student exported by ``export_student.py``: (config,
  checkpoint).
* ``omniglot_seed0``, ``omniglot_seed1``: a 1-epoch Omniglot student (the
  plain w8 classifier, seed 0 or 1) through ``tools/train.py``, validated
  with ``NCMetric``: (config, work dir, checkpoint, training output);
  ``omniglot_run`` is seed 0 as (config, work dir, training output).
* ``omniglot_root``, ``fashion_root``: the dataset folders.
"""
import os
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from tool_utils import (ENV, OMNIGLOT, REPO, STUDENT, nckd_config, run, train,
                        write_config)

FASHION_ROOT = Path('/usr/share/datasets/fashion-mnist')
# validate with the NC metric too, so scalars.json has nc/* keys
NC_VAL = '''
custom_hooks = [dict(type='PreLogitsHook')]
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='NCMetric')]
randomness = dict(seed={seed})
'''


# ------------------------------------------------------------------ datasets
@pytest.fixture(scope='session')
def omniglot_root():
    # The zips are tracked in the repository: a missing one is a failure.
    root = OMNIGLOT
    assert (root / 'images_background_small1.zip').is_file(), root
    return str(root)


@pytest.fixture(scope='session')
def fashion_root():
    if not (FASHION_ROOT / 'train-images-idx3-ubyte.gz').is_file():
        pytest.skip(f'Fashion-MNIST not installed in {FASHION_ROOT}')
    return str(FASHION_ROOT)


# -------------------------------------------------------- shared tool runs
@pytest.fixture(scope='session')
def teacher_ckpt(tmp_path_factory):
    """A randomly initialised Omniglot teacher checkpoint (NCKD works with
    any teacher; no teacher training here)."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import mmnckd  # noqa: F401
    tmp = tmp_path_factory.mktemp('teacher')
    teacher_cfg = Config.fromfile(
        REPO / 'configs/teachers/resnet18w32_1xb64_omniglot.py')
    torch.manual_seed(0)
    teacher = MODELS.build(teacher_cfg.model)
    teacher.init_weights()
    torch.save(dict(state_dict=teacher.state_dict()), tmp / 'teacher.pth')
    return tmp / 'teacher.pth'


@pytest.fixture(scope='session')
def nckd_run(teacher_ckpt, tmp_path_factory):
    """One epoch of NCKD on Omniglot through tools/train.py: (config, work
    dir, output). Read-only: copy the work dir to train on in it."""
    tmp = tmp_path_factory.mktemp('nckd')
    cfg = nckd_config(tmp / 'nckd.py', teacher_ckpt)
    out = train(cfg, tmp / 'work')
    return cfg, tmp / 'work', out


@pytest.fixture(scope='session')
def exported(nckd_run, tmp_path_factory):
    """The student of ``nckd_run`` exported: (config, checkpoint)."""
    cfg, work, _ = nckd_run
    out = tmp_path_factory.mktemp('export')
    run([
        sys.executable, 'tools/model_converters/export_student.py',
        str(cfg),
        str(work / 'epoch_1.pth'),
        str(out)
    ],
        env=ENV)
    return out / 'nckd_student.py', out / 'nckd_student.pth'


def omniglot_student(tmp_path_factory, seed):
    """A 1-epoch Omniglot student through tools/train.py: (config, work dir,
    checkpoint, output)."""
    tmp = tmp_path_factory.mktemp(f'omniglot_seed{seed}')
    cfg = write_config(tmp / 'cfg.py', STUDENT, extra=NC_VAL.format(seed=seed))
    out = train(cfg, tmp / 'work')
    ckpt = tmp / 'work' / 'epoch_1.pth'
    assert ckpt.is_file()
    return cfg, tmp / 'work', ckpt, out


@pytest.fixture(scope='session')
def omniglot_seed0(tmp_path_factory):
    """The Omniglot student of seed 0: (config, work dir, checkpoint,
    output). Read-only: copy the work dir to train on in it."""
    return omniglot_student(tmp_path_factory, 0)


@pytest.fixture(scope='session')
def omniglot_seed1(tmp_path_factory):
    """The Omniglot student of seed 1, as ``omniglot_seed0``."""
    return omniglot_student(tmp_path_factory, 1)


@pytest.fixture(scope='session')
def omniglot_run(omniglot_seed0):
    """One epoch of the Omniglot student through tools/train.py: (config,
    work dir, output)."""
    cfg, work, _, out = omniglot_seed0
    return cfg, work, out


# ---------------------------------------------------- malicious checkpoints
class _Reduce:
    """Pickles as ``func(*args)``; nests (func may itself be a _Reduce)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __call__(self, *args):  # only so that pickle accepts it as func
        raise AssertionError('never called')

    def __reduce__(self):
        return self.func, self.args


def _os_system_ckpt(path, marker):

    class Evil:

        def __reduce__(self):
            return os.system, (f'echo pwned > {marker}', )

    torch.save(dict(state_dict={}, meta=Evil()), path)


def _getattr_chain_ckpt(path, marker):
    """``getattr`` + an allow-listed class reach ``os.system``:
    HistoryBuffer.__init__.__globals__['__builtins__']['__import__']('os')
    .system(cmd). Refused only because ``builtins.getattr`` maps to the
    restricted ``history_buffer_getattr``."""
    from mmengine.logging.history_buffer import HistoryBuffer
    init = _Reduce(getattr, HistoryBuffer, '__init__')
    globs = _Reduce(getattr, init, '__globals__')
    builtins = _Reduce(_Reduce(getattr, globs, 'get'), '__builtins__')
    imp = _Reduce(_Reduce(getattr, builtins, 'get'), '__import__')
    system = _Reduce(getattr, _Reduce(imp, 'os'), 'system')
    torch.save(
        dict(
            state_dict={}, meta=_Reduce(system, f'echo pwned > '
                                        f'{marker}')), path)


@pytest.fixture(params=['os_system', 'getattr_chain'])
def evil_ckpt(request, tmp_path):
    """A checkpoint that runs ``echo pwned > marker`` when unpickled without
    restrictions (plainly, or through an allow-listed class): (path, marker,
    the pattern of the refusal message)."""
    marker = tmp_path / 'pwned.txt'
    path = tmp_path / f'{request.param}.pth'
    make = _os_system_ckpt if request.param == 'os_system' \
        else _getattr_chain_ckpt
    make(path, marker)
    # control: the payload is live under an unrestricted unpickler
    control = tmp_path / 'control.txt'
    make(tmp_path / 'control.pth', control)
    with zipfile.ZipFile(tmp_path / 'control.pth') as zf:
        data = zf.read(
            next(n for n in zf.namelist() if n.endswith('data.pkl')))
    pickle.loads(data)
    assert control.read_text().strip() == 'pwned'
    reason = (r'GLOBAL (posix|nt|os)\.system'
              if request.param == 'os_system' else
              r"Refusing getattr\(<class '.*HistoryBuffer'>, '__init__'\)")
    return path, marker, reason

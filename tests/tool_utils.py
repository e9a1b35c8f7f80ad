"""Run the command-line tools the way a user does, from the repo root."""
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OMNIGLOT = REPO / 'data' / 'omniglot'
# the Omniglot configs the tool tests train (repo-relative)
STUDENT = 'configs/vanilla/resnet18w8_1xb64_omniglot.py'
NCKD = 'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64_omniglot.py'
# one thread per process: deterministic and comparable CPU runs; a process
# killed by a fatal signal (SIGABRT, SIGSEGV) prints the Python stack of
# each of its threads, so a failing launch says where it died
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONFAULTHANDLER='1')

# a 1-epoch schedule for tests; the dataloaders (which ``extra`` may change
# in place or assign anew) get their workers from FAST_WORKERS
FAST = '''
train_dataloader = dict()
val_dataloader = dict()
test_dataloader = dict()
train_cfg = dict(max_epochs={epochs}, val_interval={epochs})
param_scheduler = dict(T_max={epochs})
default_hooks = dict(logger=dict(interval=10))
'''

# after ``extra``: fast, single-worker dataloaders unless ``extra`` names
# its own workers
FAST_WORKERS = '''
for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.setdefault('num_workers', 0)
    _loader.setdefault('persistent_workers', False)
del _loader
'''


def write_config(path: Path, base: str, extra: str = '', epochs: int = 1):
    """A config inheriting ``base`` (repo-relative) with test overrides."""
    text = f"_base_ = [{str(REPO / base)!r}]\n" + FAST.format(epochs=epochs)
    path.write_text(text + textwrap.dedent(extra) + FAST_WORKERS)
    return path


def run(cmd, timeout=900, env=None):
    """Run a tool; fail the test with its output if it fails."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHON=sys.executable)
    full_env.update(env or {})
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env)
    assert proc.returncode == 0, failure_report(cmd, proc)
    return proc.stdout + proc.stderr


def failure_report(cmd, proc) -> str:
    """The ends of a failed tool's stdout (its log: how far it got) and of
    its stderr (launcher, warnings, tracebacks), each shown in full."""
    return (f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}'
            f'\n--- stderr ---\n{proc.stderr[-3000:]}')


def train(config, work_dir, *args, timeout=900):
    return run([
        sys.executable, 'tools/train.py',
        str(config), '--work-dir',
        str(work_dir), *args
    ],
               timeout=timeout)


def evaluate(config, ckpt, *args, timeout=600):
    return run(
        [sys.executable, 'tools/test.py',
         str(config),
         str(ckpt), *args],
        timeout=timeout)


def top1(output: str) -> float:
    """The last ``accuracy/top1`` the tools printed."""
    lines = [ln for ln in output.splitlines() if 'accuracy/top1:' in ln]
    assert lines, 'no accuracy/top1 in the output:\n' + output[-3000:]
    return float(lines[-1].split('accuracy/top1:')[1].split()[0])


def nckd_config(path, teacher_ckpt, epochs=1, extra='', base=NCKD):
    """A test config of ``base`` (an NCKD config by default) that reads the
    teacher from ``teacher_ckpt``."""
    return write_config(
        path,
        base,
        epochs=epochs,
        extra=f'model = dict(teacher_ckpt={str(teacher_ckpt)!r})\n' + extra)


def load_tool(path):
    """A tool script (repo-relative or absolute path) imported as a module."""
    path = REPO / path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

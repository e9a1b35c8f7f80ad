"""Checkpoints load with ``weights_only=True`` only: malicious checkpoints
(``os.system`` directly or reached through ``getattr`` on an allow-listed
class) are refused in process; the restricted ``getattr``; no code opts out;
a tools/train.py checkpoint loads with mmnckd's allow-list (not without).
The malicious checkpoints are the ``evil_ckpt`` fixture of conftest.py;
tools/test.py refusing them is in tests/test_tools/test_test.py."""
import ast
import io
import os
import pickle
import subprocess
import sys
import tokenize

import pytest
import torch
from mmpretrain.registry import MODELS
from small_models import TEACHER, all_losses_distiller
from tool_utils import REPO, run

import mmnckd  # noqa: F401  (registers the safe checkpoint globals)
from mmnckd.utils.safe_load import history_buffer_getattr


def test_malicious_checkpoint_refused_in_process(evil_ckpt):
    path, marker, reason = evil_ckpt
    from mmengine.runner import load_checkpoint
    with pytest.raises(pickle.UnpicklingError, match=reason):
        torch.load(path)  # torch's default: weights_only=True
    with pytest.raises(pickle.UnpicklingError, match=reason):
        load_checkpoint(MODELS.build(TEACHER), str(path), map_location='cpu')
    model = all_losses_distiller(teacher_ckpt=str(path))
    with pytest.raises(RuntimeError, match=reason) as err:
        model.init_weights()
    assert 'model.teacher_ckpt=' in str(err.value)
    assert 'weights_only=True' in str(err.value)
    assert not marker.exists()


def test_restricted_getattr_allows_only_history_buffer_statistics():
    from mmengine.logging.history_buffer import HistoryBuffer
    for name in ('min', 'max', 'mean', 'current'):
        assert history_buffer_getattr(HistoryBuffer,
                                      name) is getattr(HistoryBuffer, name)
    for obj, name in ((HistoryBuffer, '__init__'), (HistoryBuffer, 'update'),
                      (HistoryBuffer, '__class__'), (os, 'system'),
                      (torch.Tensor, 'mean'), (dict, 'get')):
        with pytest.raises(pickle.UnpicklingError, match='Refusing getattr'):
            history_buffer_getattr(obj, name)
    # a real message-hub checkpoint still loads with weights_only=True
    hub = HistoryBuffer()
    hub.update(1.5)
    buf = torch.load(_save_tmp(dict(hub=hub, stat=HistoryBuffer.mean)))
    assert buf['hub'].current() == 1.5 and buf['stat'] is HistoryBuffer.mean


def _save_tmp(obj):
    stream = io.BytesIO()
    torch.save(obj, stream)
    stream.seek(0)
    return stream


def test_no_weights_only_false_in_package_or_tools():
    """No code under mmnckd/ or tools/ opts out of ``weights_only`` loading:
    no ``weights_only=False`` in code (docstrings that *say* so are fine),
    every ``weights_only=`` keyword is the constant True, and no switch of
    torch's environment variable that forces unsafe loading."""
    offenders = []
    for folder in ('mmnckd', 'tools'):
        for path in sorted((REPO / folder).rglob('*')):
            if not path.is_file() or path.suffix not in ('.py', '.sh'):
                continue
            text = path.read_text(errors='replace')
            rel = str(path.relative_to(REPO))
            if 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' in text:
                offenders.append(rel + ': TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
            if path.suffix == '.sh':
                if 'weights_only=False' in text.replace(' ', ''):
                    offenders.append(rel)
                continue
            code = ''.join(
                tok.string for tok in tokenize.generate_tokens(
                    io.StringIO(text).readline)
                if tok.type not in (tokenize.STRING, tokenize.COMMENT))
            if 'weights_only=False' in code.replace(' ', ''):
                offenders.append(rel)
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.keyword) and \
                        node.arg == 'weights_only' and not (
                            isinstance(node.value, ast.Constant)
                            and node.value.value is True):
                    offenders.append(f'{rel}:{node.lineno}')
    assert not offenders, offenders


@pytest.mark.slow
def test_checkpoint_loads_weights_only(omniglot_run):
    _, work, _ = omniglot_run
    ckpt = work / 'epoch_1.pth'
    load = ('import torch; ck = torch.load({!r}, weights_only=True); '
            'print(sorted(ck))').format(str(ckpt))
    plain = subprocess.run([sys.executable, '-c', load],
                           capture_output=True,
                           text=True,
                           cwd=REPO)
    assert plain.returncode != 0  # torch alone refuses mmengine's types
    assert 'Weights only load failed' in plain.stderr
    out = run([sys.executable, '-c', 'import mmnckd; ' + load])
    assert "'message_hub'" in out and "'state_dict'" in out

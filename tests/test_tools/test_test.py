"""tools/test.py: a distiller checkpoint and its exported student evaluate
alike; a mismatched config/checkpoint pair and a malicious checkpoint are
refused with a message that says why."""
import os
import re
import subprocess
import sys

import pytest
from tool_utils import ENV, REPO, evaluate, top1

pytestmark = pytest.mark.slow


@pytest.mark.parametrize('tool', ['tools/test.py', 'export_student.py'])
def test_malicious_checkpoint_refused_even_with_force_env(evil_ckpt, tool):
    """torch's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns weights_only off
    where a caller does not pass it explicitly: both tools must still
    refuse (the marker file is what the pickle would create)."""
    path, marker, reason = evil_ckpt
    cfg = 'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64_omniglot.py'
    args = ([
        sys.executable, 'tools/test.py', cfg,
        str(path), '--work-dir',
        str(path.parent / 'work')
    ] if tool == 'tools/test.py' else [
        sys.executable, 'tools/model_converters/export_student.py', cfg,
        str(path),
        str(path.parent / 'export')
    ])
    proc = subprocess.run(
        args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1'))
    assert proc.returncode != 0
    assert 'Weights only load failed' in proc.stderr
    assert re.search(reason, proc.stderr), proc.stderr[-2000:]
    assert not marker.exists()
    assert not (path.parent / 'export').exists()


def test_tools_test_matching_config_and_checkpoint(nckd_run, exported,
                                                   tmp_path):
    nckd_cfg, work, _ = nckd_run
    ckpt = work / 'epoch_1.pth'
    distilled = top1(
        evaluate(nckd_cfg, ckpt, '--work-dir', str(tmp_path / 'a')))
    student = top1(evaluate(*exported, '--work-dir', str(tmp_path / 'b')))
    assert student == pytest.approx(distilled, abs=1e-6)


def test_tools_test_mismatched_config_says_which_to_use(
        nckd_run, exported, tmp_path):
    """mmengine loads non-strictly: without a check these pairs evaluated
    a randomly initialised model with only a warning."""
    nckd_cfg, work, _ = nckd_run
    distiller_ckpt = work / 'epoch_1.pth'
    student_cfg, student_ckpt = exported
    for cfg, ckpt, expect in ((student_cfg, distiller_ckpt, [
            'is a distiller checkpoint', "model.type='ImageClassifier'",
            'export_student.py', 'distiller config'
    ]), (nckd_cfg, student_ckpt, [
            'holds no "student." weights', "model.type='NCKDDistiller'",
            '<name>_student.py', 'distiller checkpoint'
    ])):
        proc = subprocess.run([
            sys.executable, 'tools/test.py',
            str(cfg),
            str(ckpt), '--work-dir',
            str(tmp_path)
        ],
                              cwd=REPO,
                              capture_output=True,
                              text=True,
                              timeout=300,
                              env=dict(os.environ, **ENV))
        assert proc.returncode != 0
        for text in expect:
            assert text in proc.stderr, (text, proc.stderr[-2000:])
        assert 'accuracy/top1' not in proc.stdout + proc.stderr


def _kd_checkpoint(path):
    """An (untrained) KD distiller checkpoint of the Omniglot KD config."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(
        REPO / 'configs/kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


@pytest.fixture
def test_tool():
    from tool_utils import load_tool
    return load_tool('tools/test.py')


def test_kd_checkpoint_on_nckd_config_lists_the_keys(test_tool, tmp_path):
    from mmengine.config import Config
    cfg = 'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64_omniglot.py'
    ckpt = _kd_checkpoint(tmp_path / 'kd.pth')
    with pytest.raises(ValueError) as err:
        test_tool.check_checkpoint(Config.fromfile(REPO / cfg), cfg, str(ckpt))
    msg = str(err.value)
    assert 'does not match the model' in msg
    # the KD student has a linear head, the NCKD one an ETF head + projector
    assert 'missing keys: ' in msg and 'head.weight' in msg
    assert 'unexpected keys: ' in msg and 'head.fc.weight' in msg
    assert 'config it was trained with' in msg


def test_nckd_checkpoint_on_kd_config_lists_the_keys(test_tool, nckd_run):
    from mmengine.config import Config
    _, work, _ = nckd_run
    cfg = 'configs/kd/kd_resnet18w32_resnet18w8_1xb64_omniglot.py'
    with pytest.raises(ValueError, match='missing keys: .*head.fc.weight'):
        test_tool.check_checkpoint(
            Config.fromfile(REPO / cfg), cfg, str(work / 'epoch_1.pth'))


def test_non_finite_head_row_refused(test_tool, nckd_run, tmp_path):
    """A NaN row in the head used to test with rc=0 and ``nc3: nan``."""
    import torch
    cfg, work, _ = nckd_run
    ckpt = torch.load(work / 'epoch_1.pth', weights_only=False)
    ckpt['state_dict']['student.head.weight'][3] = float('nan')
    torch.save(ckpt, tmp_path / 'nan.pth')
    from mmengine.config import Config

    # the matching checkpoint passes ...
    test_tool.check_checkpoint(
        Config.fromfile(cfg), str(cfg), str(work / 'epoch_1.pth'))
    # ... the same one with one NaN row does not, and names the tensor
    with pytest.raises(ValueError) as err:
        test_tool.check_checkpoint(
            Config.fromfile(cfg), str(cfg), str(tmp_path / 'nan.pth'))
    assert 'student.head.weight (' in str(err.value)
    assert 'NaN/Inf' in str(err.value)

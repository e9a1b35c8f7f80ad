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


def test_malicious_checkpoint_refused_by_tools_test(evil_ckpt):
    path, marker, reason = evil_ckpt
    proc = subprocess.run([
        sys.executable, 'tools/test.py',
        'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64_omniglot.py',
        str(path), '--work-dir',
        str(path.parent / 'work')
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert 'Weights only load failed' in proc.stderr
    assert re.search(reason, proc.stderr), proc.stderr[-2000:]
    assert not marker.exists()


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

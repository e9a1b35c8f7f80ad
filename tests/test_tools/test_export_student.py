"""tools/model_converters/export_student.py: a plain classifier's config
and weights that evaluate to the distiller's top-1."""
import sys

import pytest
import torch
from tool_utils import evaluate, run, top1

pytestmark = pytest.mark.slow


def test_exported_student_matches_the_distiller(nckd_run, tmp_path):
    cfg, work, _ = nckd_run
    ckpt = work / 'epoch_1.pth'
    distiller_top1 = top1(evaluate(cfg, ckpt))
    run([
        sys.executable, 'tools/model_converters/export_student.py',
        str(cfg),
        str(ckpt),
        str(tmp_path / 'export')
    ])
    student_cfg = tmp_path / 'export' / 'nckd_student.py'
    student_ckpt = tmp_path / 'export' / 'nckd_student.pth'
    state = torch.load(student_ckpt, weights_only=True)['state_dict']
    # a plain classifier's keys only: no teacher, projector or prototypes
    assert {k.split('.')[0] for k in state} == {'backbone', 'neck', 'head'}
    assert 'head.weight' in state and 'head.log_scale' in state
    from mmengine.config import Config
    assert Config.fromfile(student_cfg).model.type == 'ImageClassifier'
    out = evaluate(student_cfg, student_ckpt)
    assert top1(out) == pytest.approx(distiller_top1, abs=1e-6)

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


def test_export_of_mismatched_checkpoint_writes_nothing(nckd_run, tmp_path):
    """A KD checkpoint with an NCKD config used to export an NCKD student
    config with KD weights; a failed load left a config without weights."""
    from test_test import _kd_checkpoint
    from tool_utils import REPO, load_tool
    tool = load_tool('tools/model_converters/export_student.py')
    kd = _kd_checkpoint(tmp_path / 'kd.pth')
    out = tmp_path / 'export'
    with pytest.raises(ValueError, match='missing keys: .*head.weight'):
        tool.export_student(
            str(REPO /
                'configs/nckd/nckd_resnet18w32_resnet18w8_1xb64_omniglot.py'),
            str(kd), str(out))
    assert not out.exists() or not any(out.iterdir())
    # a damaged checkpoint: nothing written either
    (tmp_path / 'empty.pth').write_bytes(b'')
    cfg, _, _ = nckd_run
    with pytest.raises(RuntimeError, match='empty.pth.* is empty'):
        tool.export_student(str(cfg), str(tmp_path / 'empty.pth'), str(out))
    assert not out.exists() or not any(out.iterdir())

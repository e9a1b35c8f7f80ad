"""PreLogitsHook: NCMetric on a plain classifier through tools/test.py,
equal to the offline NC analysis of the same checkpoint."""
import sys

import pytest
from tool_utils import STUDENT, evaluate, run, top1, write_config

pytestmark = pytest.mark.slow


def test_nc_metric_on_a_plain_classifier_and_nc_analysis(
        omniglot_run, tmp_path):
    cfg, work, _ = omniglot_run
    ckpt = work / 'epoch_1.pth'
    nc_cfg = write_config(
        tmp_path / 'nc.py',
        STUDENT,
        extra='''
        custom_hooks = [dict(type='PreLogitsHook')]
        test_evaluator = [dict(type='Accuracy', topk=(1, 5)),
                          dict(type='NCMetric')]
        ''')
    out = evaluate(nc_cfg, ckpt)
    line = [ln for ln in out.splitlines() if 'nc/nc1:' in ln][-1]
    streamed = {
        k: float(line.split(f'nc/{k}:')[1].split()[0])
        for k in ('nc1', 'nc2', 'nc3')
    }
    json_out = tmp_path / 'nc.json'
    run([
        sys.executable, 'tools/analysis_tools/nc_analysis.py',
        str(cfg),
        str(ckpt), '--out',
        str(json_out)
    ])
    import json
    offline = json.loads(json_out.read_text())
    assert offline['top1'] == pytest.approx(top1(out), abs=1e-3)
    assert offline['num_samples'] == 1210
    for k, v in streamed.items():  # the metric and the tool agree
        assert offline[k] == pytest.approx(v, rel=1e-3, abs=1e-4), k

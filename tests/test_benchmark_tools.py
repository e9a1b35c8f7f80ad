"""tools/benchmark/cost.py runs end to end and reports consistent numbers
(the speed targets themselves are benchmark results, not tests)."""
import json
import sys

from tool_utils import run


def test_cost_steps_and_prototype_pass(tmp_path):
    out = tmp_path / 'cost.json'
    text = run([sys.executable, 'tools/benchmark/cost.py', '--sections',
                'steps', 'proto', '--steps', '1', '--rounds', '1', '--out',
                str(out)])
    assert '| nckd |' in text and 'Prototype pass' in text
    res = json.loads(out.read_text())
    steps = res['steps']
    assert set(steps) == {'student', 'kd', 'nckd', 'nckd_no_kd'}
    for r in steps.values():
        assert r['step_s'] > 0 and r['peak_bytes'] > 0
    # KD and NCKD hold the teacher on top of the student (NCKD without KD
    # does not run it per step, but keeps its weights)
    for method in ('kd', 'nckd', 'nckd_no_kd'):
        assert steps[method]['peak_bytes'] > steps['student']['peak_bytes']
    proto = res['proto']
    assert proto['seconds']['prototype_pass'] > 0
    assert proto['ratio'] > 0

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
    assert set(steps) == {'student', 'kd', 'nckd', 'nckd_kd'}
    for r in steps.values():
        assert r['step_s'] > 0 and r['peak_bytes'] > 0
    # KD holds the teacher and its activations on top of the student; NCKD
    # holds the (unused per step) teacher weights too.
    assert steps['kd']['peak_bytes'] > steps['student']['peak_bytes']
    assert steps['nckd']['peak_bytes'] > steps['student']['peak_bytes']
    assert steps['nckd_kd']['peak_bytes'] >= steps['kd']['peak_bytes']
    proto = res['proto']
    assert proto['seconds']['prototype_pass'] > 0
    assert proto['ratio'] > 0

""".dev_scripts/benchmark/cost.py runs end to end and reports consistent
numbers
(the speed targets themselves are benchmark results, not tests)."""
import json
import sys

import pytest
from tool_utils import run


@pytest.mark.slow
def test_cost_steps_and_prototype_pass(tmp_path):
    out = tmp_path / 'cost.json'
    text = run([
        sys.executable, '.dev_scripts/benchmark/cost.py', '--sections',
        'steps', 'proto', '--steps', '1', '--rounds', '1', '--out',
        str(out)
    ])
    assert '| nckd |' in text and 'Prototype pass' in text
    res = json.loads(out.read_text())
    steps = res['steps']
    assert set(steps) == {
        'student', 'kd_plain', 'kd', 'nckd', 'nckd_no_kd', 'plugin_kd', 'crd',
        'crd_nckd', 'simkd', 'simkd_nckd'
    }
    for r in steps.values():
        assert r['step_s'] > 0 and r['peak_bytes'] > 0
    # KD and NCKD hold the teacher on top of the student (NCKD without KD
    # does not run it per step, but keeps its weights)
    for method in ('kd', 'nckd', 'nckd_no_kd'):
        assert steps[method]['peak_bytes'] > steps['student']['peak_bytes']
    # the generic KD distiller holds nothing a hand-written KD loop does not
    # (no prototype buffers): the same peak within 1 %
    assert steps['kd']['peak_bytes'] <= 1.01 * steps['kd_plain']['peak_bytes']
    # CRD holds its memory (2 x 3,630 x 128 floats) and gathers
    # 64 x 1,025 rows of it per network and step: more than KD's peak
    crd_memory = 2 * 3630 * 128 * 4
    assert steps['crd']['peak_bytes'] > steps['kd']['peak_bytes'] + crd_memory
    # NCKD on top adds its projector, prototypes and NC losses
    assert steps['crd_nckd']['peak_bytes'] > steps['crd']['peak_bytes']
    assert steps['simkd_nckd']['peak_bytes'] > steps['simkd']['peak_bytes']
    proto = res['proto']
    assert proto['seconds']['prototype_pass'] > 0
    assert proto['ratio'] > 0


def load_efficacy():
    import importlib.util

    from tool_utils import REPO
    spec = importlib.util.spec_from_file_location(
        'efficacy', REPO / '.dev_scripts/benchmark/efficacy.py')
    efficacy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(efficacy)
    return efficacy


def test_efficacy_benchmarks_name_existing_configs():
    """Every efficacy method is a config file (no overlays in code)."""
    from tool_utils import REPO
    efficacy = load_efficacy()
    for name in ('omniglot', 'fashion_mnist'):
        bench = efficacy.load_benchmark(name)
        configs = [bench['teacher'], *bench['methods'].values()]
        assert all((REPO / c).is_file() for c in configs), name
        assert len(set(configs)) == len(configs), name
        assert {'student', 'kd', 'dkd', 'nckd'} <= set(bench['methods'])
    with pytest.raises(SystemExit, match='No benchmark file'):
        efficacy.load_benchmark('no_such_benchmark')


def test_efficacy_top1_cell_has_no_spread_for_one_seed():
    """One run is written alone; several as mean ± sample std (n - 1)."""
    efficacy = load_efficacy()
    assert efficacy.format_top1([88.594]) == '88.59'
    # mean 2, sample std sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1
    assert efficacy.format_top1([1.0, 2.0, 3.0]) == '2.00 ± 1.00'

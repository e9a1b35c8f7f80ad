"""The scripts of .dev_scripts/benchmark: cost.py runs end to end and
reports consistent numbers (the speed targets themselves are benchmark
results, not tests); efficacy.py's tables and paired.py's intervals."""
import json
import sys

import pytest
from tool_utils import load_tool, run


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


def test_efficacy_benchmarks_name_existing_configs():
    """Every efficacy method is a config file (no overlays in code)."""
    from tool_utils import REPO
    efficacy = load_tool('.dev_scripts/benchmark/efficacy.py')
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
    efficacy = load_tool('.dev_scripts/benchmark/efficacy.py')
    assert efficacy.format_top1([88.594]) == '88.59'
    # mean 2, sample std sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1
    assert efficacy.format_top1([1.0, 2.0, 3.0]) == '2.00 ± 1.00'


def write_runs(method_dir, top1_by_seed):
    for seed, top1 in top1_by_seed.items():
        run_dir = method_dir / f'seed{seed}'
        run_dir.mkdir(parents=True)
        (run_dir / 'result.json').write_text(json.dumps(dict(top1=top1)))


def test_paired_interval_by_hand():
    """d = 1, 2, 3: mean 2, sample std 1, t_{0.975, 2} = 4.3027 (tables),
    half width 4.3027 / sqrt(3) = 2.4841."""
    paired = load_tool('.dev_scripts/benchmark/paired.py')
    mean, std, low, high = paired.paired_interval([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0)
    assert low == pytest.approx(2 - 2.4841, abs=1e-4)
    assert high == pytest.approx(2 + 2.4841, abs=1e-4)
    # many pairs: t tends to the normal's 1.96
    assert paired.t_quantile_975(10_000) == pytest.approx(1.96, abs=1e-3)
    with pytest.raises(ValueError, match='2 or more differences, got 1'):
        paired.paired_interval([0.5])


def test_paired_pools_folds_and_refuses_unpaired_seeds(tmp_path):
    paired = load_tool('.dev_scripts/benchmark/paired.py')
    write_runs(tmp_path / 'f0' / 'kd', {0: 90.0, 1: 91.0})
    write_runs(tmp_path / 'f0' / 'nckd', {0: 90.5, 1: 92.0})
    write_runs(tmp_path / 'f1' / 'kd', {0: 95.0, 1: 94.0})
    write_runs(tmp_path / 'f1' / 'nckd', {0: 94.5, 1: 94.0})
    res = paired.main([
        f'{tmp_path}/f0/kd:{tmp_path}/f0/nckd',
        f'{tmp_path}/f1/kd:{tmp_path}/f1/nckd'
    ])
    # differences 0.5, 1.0, -0.5, 0.0 pooled over both folds
    assert res['n'] == 4
    assert res['mean'] == pytest.approx(0.25)
    # squared deviations 0.0625 + 0.5625 + 0.5625 + 0.0625 = 1.25
    assert res['std'] == pytest.approx((1.25 / 3)**0.5)
    assert res['low'] < 0 < res['high']
    write_runs(tmp_path / 'f2' / 'kd', {0: 90.0, 1: 91.0, 2: 92.0})
    write_runs(tmp_path / 'f2' / 'nckd', {0: 90.0, 1: 91.0})
    with pytest.raises(SystemExit, match=r'Unpaired seeds.*\[0, 1, 2\]'):
        paired.pair_runs(tmp_path / 'f2' / 'kd', tmp_path / 'f2' / 'nckd')
    with pytest.raises(SystemExit, match='is not a folder'):
        paired.seed_results(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit, match='no seed<N>/result.json'):
        paired.seed_results(str(tmp_path / 'empty'))
    with pytest.raises(SystemExit, match='REFERENCE_DIR:CANDIDATE_DIR'):
        paired.parse_pair('only_one_folder')


def save_teacher(path, train_dataset: str):
    """A checkpoint whose recorded config (mmengine's ``meta.cfg``) trains
    on ``train_dataset``."""
    import torch
    cfg = f'train_dataloader = dict(batch_size=64, dataset={train_dataset})\n'
    torch.save(dict(meta=dict(cfg=cfg), state_dict={}), path)
    return str(path)


def test_efficacy_refuses_a_teacher_trained_on_other_images(tmp_path):
    """A validation run's teacher must not have seen the validation images,
    and a test run's teacher must have trained on the whole training set:
    the checkpoint's recorded training dataset is checked against the
    split's options."""
    efficacy = load_tool('.dev_scripts/benchmark/efficacy.py')
    val_options = efficacy.load_benchmark('omniglot')['val_options']
    fold1 = val_options + ['train_dataloader.dataset.val_fold=1']
    whole = save_teacher(tmp_path / 'whole.pth',
                         "dict(type='Omniglot', split='train')")
    fold0 = save_teacher(
        tmp_path / 'fold0.pth',
        "dict(type='RepeatDataset', times=2, dataset=dict(type='Omniglot', "
        "split='train', val_drawers=2, pipeline=[]))")
    held1 = save_teacher(
        tmp_path / 'fold1.pth',
        "dict(type='Omniglot', split='train', val_drawers=2, val_fold=1)")
    # accepted: each teacher with the split it was trained for (through a
    # dataset wrapper, too)
    efficacy.check_teacher_data(whole, val_options, [], 0)
    efficacy.check_teacher_data(fold0, val_options, val_options, 0)
    efficacy.check_teacher_data(held1, val_options, fold1, 1)
    # refused: the whole-training-set teacher for validation, a fold's
    # teacher for the test split, another fold's teacher
    with pytest.raises(
            SystemExit,
            match=r"\{'val_drawers': 0\}.*val_drawers"
            r'=2 train_dataloader.dataset.val_fold=0'):
        efficacy.check_teacher_data(whole, val_options, val_options, 0)
    with pytest.raises(SystemExit, match=r"\{'val_drawers': 2\}"):
        efficacy.check_teacher_data(fold0, val_options, [], 0)
    with pytest.raises(SystemExit, match=r"\{'val_fold': 0\}.*val_fold=1"):
        efficacy.check_teacher_data(fold0, val_options, fold1, 1)
    with pytest.raises(SystemExit, match=r"\{'val_fold': 1\}"):
        efficacy.check_teacher_data(held1, val_options, val_options, 0)
    # no recorded config: nothing to check against
    import torch
    torch.save(dict(state_dict={}), tmp_path / 'bare.pth')
    with pytest.raises(SystemExit, match='records no config'):
        efficacy.check_teacher_data(
            str(tmp_path / 'bare.pth'), val_options, val_options, 0)


def test_efficacy_result_names_the_images_evaluated(tmp_path, monkeypatch):
    """tools/test.py and nc_analysis.py only know the test dataloader (which
    --split val points at the held-out block): result.json names the split
    the benchmark evaluated, and a finished run is read back, not re-run."""
    efficacy = load_tool('.dev_scripts/benchmark/efficacy.py')
    trained = []

    def train(config, work, options, nproc):  # as efficacy.train: a run dir
        trained.append(work)
        work.mkdir(parents=True)
        return str(work / 'epoch_30.pth'), 12.5

    monkeypatch.setattr(efficacy, 'train', train)
    monkeypatch.setattr(
        efficacy, 'evaluate', lambda config, ckpt, work, options: dict(
            top1=83.5, split='test'))  # what nc_analysis.py reports
    work = tmp_path / 'kd' / 'seed0'
    first = efficacy.run_once('kd.py', work, [], [], 1, 'val-fold1')
    assert first['split'] == 'val-fold1' and first['top1'] == 83.5
    assert json.loads((work / 'result.json').read_text()) == first
    assert efficacy.run_once('kd.py', work, [], [], 1, 'val-fold1') == first
    assert trained == [work]

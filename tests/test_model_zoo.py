"""The model zoo: metafile checks (in the spirit of mmpretrain's
``.dev_scripts/check_metafile.py``), registration in mmpretrain's ModelHub,
``get_model`` with a local checkpoint, and ``publish_model.py``."""
import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

import mmnckd  # noqa: F401
import mmpretrain
from mmnckd.apis.model_zoo import find_model_index, register_model_index
from mmpretrain.apis import ModelHub

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / 'tools/model_converters/publish_model.py'
_spec = importlib.util.spec_from_file_location('publish_model', TOOL)
publish_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(publish_model)

# data tag of the model name -> Training Data
DATA_TAGS = {
    'cifar100': 'CIFAR-100',
    'in1k': 'ImageNet-1k',
    'omniglot': 'Omniglot',
    'fashion-mnist': 'Fashion-MNIST',
}
CHEAP = 'nckd_resnet20_resnet56-teacher_1xb64_cifar100'  # plug-in form
ETF = 'nckd_resnet8x4_resnet32x4-teacher_1xb64_cifar100'  # NC3 head


def metafiles():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    return [REPO / p for p in index['Import']]


def all_models():
    for path in metafiles():
        data = yaml.safe_load(path.read_text())
        for model in data.get('Models') or []:
            yield path, data, model


def test_model_index_imports_every_metafile():
    listed = {p.resolve() for p in metafiles()}
    found = {p.resolve() for p in (REPO / 'configs').rglob('metafile.yml')}
    assert listed == found
    assert Path(find_model_index()).resolve() == REPO / 'model-index.yml'


@pytest.mark.parametrize('path', metafiles(), ids=lambda p: p.parent.name)
def test_metafile_schema(path):
    data = yaml.safe_load(path.read_text())
    assert set(data) <= {'Collections', 'Models'}
    collections = data['Collections']
    assert len(collections) == 1
    coll = collections[0]
    assert coll['Name']
    assert coll['Paper']['Title'] and coll['Paper']['URL'].startswith('http')
    assert (REPO / coll['README']).is_file(), coll['README']
    for model in data['Models']:
        name = model['Name']
        assert model['In Collection'] == coll['Name'], name
        meta = model['Metadata']
        for key in ('FLOPs', 'Parameters'):
            assert isinstance(meta[key], int) and meta[key] > 0, (name, key)
        assert meta['Training Data'], name
        config = REPO / model['Config']
        assert config.is_file() and config.suffix == '.py', name
        assert model['Config'].startswith('configs/'), name
        for result in model.get('Results') or []:
            assert result['Task'] == 'Image Classification', name
            assert result['Dataset'], name
            metrics = result['Metrics']
            assert metrics and all(
                isinstance(v, (int, float)) for v in metrics.values())
        if model.get('Weights') is not None:
            weights = model['Weights']
            assert weights.startswith(('http://', 'https://')) or \
                Path(weights).is_file(), (name, weights)
            assert re.search(rf'{re.escape(name)}_\d{{8}}-[0-9a-f]{{8}}\.pth$',
                             weights), (name, weights)
        unknown = set(model) - {'Name', 'Metadata', 'In Collection',
                                'Results', 'Weights', 'Config', 'README',
                                'Paper', 'Code', 'Image'}
        assert not unknown, (name, unknown)


def test_model_names():
    names = [m['Name'] for _, _, m in all_models()]
    assert len(names) == len(set(names)), 'duplicate model names'
    for path, data, model in all_models():
        name = model['Name']
        match = publish_model.DISTILLED_NAME.match(name)
        assert match, (f'{name} does not follow '
                       '{algo}_{student}_{teacher}-teacher_{N}xb{M}_{data}')
        algo = data['Collections'][0]['Name'].lower()
        assert match['algo'] == algo or match['algo'].startswith(algo + '-')
        data_tag = match['data']
        if data_tag in DATA_TAGS:
            assert model['Metadata']['Training Data'] == DATA_TAGS[data_tag]
        # the config's file name names the pair (CIFAR: both archs)
        config = Path(model['Config']).stem
        if data_tag == 'cifar100':
            assert f"_{match['teacher']}_{match['student']}_" in config, name


def test_modelindex_parses_without_errors():
    from modelindex.load_model_index import load
    index = load(str(REPO / 'model-index.yml'))
    index.build_models_with_collections()
    # modelindex resolves README against the metafile's folder, mmpretrain
    # (and we) write it relative to the repository root: checked above.
    errors = [e for e in index.check(silent=True)
              if 'Path to README file' not in e]
    assert not errors, errors
    assert len(index.models) == len(list(all_models()))


def test_register_lists_and_builds():
    names = register_model_index()
    assert register_model_index() == names  # idempotent
    nckd = sorted(m['Name'] for p, _, m in all_models()
                  if p.parent.name == 'nckd')
    assert mmpretrain.list_models('*nckd*') == nckd
    assert set(mmpretrain.list_models('kd_')) == {
        m['Name'] for p, _, m in all_models() if p.parent.name == 'kd'}
    assert len(mmpretrain.list_models('dkd_')) == len(
        [1 for p, _, m in all_models() if p.parent.name == 'dkd'])

    model = mmpretrain.get_model(ETF)
    assert type(model).__name__ == 'NCKDDistiller'
    assert type(model.student.head).__name__ == 'ETFHead'
    entry = next(m for _, _, m in all_models() if m['Name'] == ETF)
    params = sum(p.numel() for p in model.student.parameters())
    assert entry['Metadata']['Parameters'] == params
    assert len(model._dataset_meta['classes']) == 100
    with torch.no_grad():
        logits = model(torch.zeros(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 100)


def test_register_rejects_foreign_duplicate(tmp_path):
    register_model_index()
    data = yaml.safe_load((REPO / 'configs/nckd/metafile.yml').read_text())
    data['Models'] = data['Models'][:1]
    other = tmp_path / 'metafile.yml'
    other.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match='already registered'):
        register_model_index(str(other), config_prefix=str(REPO))
    assert ModelHub.has(data['Models'][0]['Name'].lower())  # ours intact


def test_get_model_loads_local_checkpoint(tmp_path):
    register_model_index()
    model = mmpretrain.get_model(CHEAP)
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(torch.randn_like(p))
    ckpt = tmp_path / 'local.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    loaded = mmpretrain.get_model(CHEAP, pretrained=str(ckpt))
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    assert not any(k.startswith('teacher.') for k in ours)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


# ------------------------------------------------------------ publish_model
def plain_training_checkpoint(path: Path):
    """A plain ResNet-20 classifier checkpoint as training writes one (with
    optimizer, message hub and schedulers) -- the exported student of
    configs/nckd/nckd_resnet56_resnet20_cifar100.py."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(REPO / 'configs/teachers/resnet20_cifar100.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    state = model.state_dict()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save({
        'meta': {'epoch': 240, 'iter': 187440, 'seed': 0,
                 'dataset_meta': {
                     'classes': tuple(f'c{i}' for i in range(100))}},
        'state_dict': state,
        'optimizer': opt.state_dict(),
        'param_schedulers': [{'milestones': [150, 180, 210]}],
        'message_hub': {'log_scalars': {}},
    }, path)
    return state


def test_publish_model_cli_updates_entry(tmp_path):
    ckpt = tmp_path / 'epoch_240.pth'
    state = plain_training_checkpoint(ckpt)
    metafile = tmp_path / 'metafile.yml'
    shutil.copy(REPO / 'configs/nckd/metafile.yml', metafile)
    before = yaml.safe_load(metafile.read_text())
    out_dir = tmp_path / 'published'
    cmd = [sys.executable, str(TOOL), str(ckpt), str(out_dir),
           '--name', CHEAP, '--metafile', str(metafile),
           '--config', 'configs/nckd/nckd_resnet56_resnet20_cifar100.py',
           '--dataset', 'CIFAR-100', '--top1', '70.123', '--top5', '91.5',
           '--weights-url', 'https://example.org/mmnckd/nckd/',
           '--input-shape', '3', '32', '32']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    files = list(out_dir.iterdir())
    assert len(files) == 1
    published = files[0]
    match = re.fullmatch(rf'{re.escape(CHEAP)}_(\d{{8}})-([0-9a-f]{{8}})\.pth',
                         published.name)
    assert match, published.name
    sha = hashlib.sha256(published.read_bytes()).hexdigest()
    assert sha.startswith(match[2])
    assert str(published) in proc.stdout

    # loads under weights_only, with mmnckd and with plain torch
    ckpt_out = torch.load(published, map_location='cpu', weights_only=True)
    assert set(ckpt_out) == {'state_dict', 'meta'}
    assert ckpt_out['meta']['epoch'] == 240
    # a plain student published with a distiller config: under `student.`
    assert set(ckpt_out['state_dict']) == {f'student.{k}' for k in state}
    for k, v in state.items():
        assert torch.equal(ckpt_out['state_dict'][f'student.{k}'], v)
    bare = subprocess.run(
        [sys.executable, '-c',
         f'import torch; ck = torch.load({str(published)!r}, '
         f'weights_only=True); print(sorted(ck))'],
        capture_output=True, text=True, timeout=120)
    assert bare.returncode == 0, bare.stderr

    # the existing entry is updated in place, the others untouched
    after = yaml.safe_load(metafile.read_text())
    assert [m['Name'] for m in after['Models']] == \
        [m['Name'] for m in before['Models']]
    old = next(m for m in before['Models'] if m['Name'] == CHEAP)
    new = next(m for m in after['Models'] if m['Name'] == CHEAP)
    assert new['Results'] == [{
        'Task': 'Image Classification', 'Dataset': 'CIFAR-100',
        'Metrics': {'Top 1 Accuracy': 70.12, 'Top 5 Accuracy': 91.5}}]
    assert new['Weights'] == ('https://example.org/mmnckd/nckd/' +
                              published.name)
    assert new['Config'] == old['Config']
    assert new['In Collection'] == 'NCKD'
    # counted again from the weights: the same model, the same numbers
    assert new['Metadata']['Parameters'] == old['Metadata']['Parameters']
    assert new['Metadata']['FLOPs'] == old['Metadata']['FLOPs']
    assert new['Metadata']['Epochs'] == 240
    for a, b in zip(before['Models'], after['Models']):
        if a['Name'] != CHEAP:
            assert a == b
    assert after['Collections'] == before['Collections']
    assert metafile.read_text().startswith('# NCKD models of mmnckd')


def test_publish_model_adds_entry_for_get_model(tmp_path, request):
    """A distiller checkpoint published as a new entry; the registered entry
    gives the same weights back through mmpretrain.get_model."""
    register_model_index()
    name = 'nckd_resnet8x4_resnet32x4-teacher_1xb64-test_cifar100'
    config = 'configs/nckd/nckd_resnet32x4_resnet8x4_cifar100.py'
    _, model = publish_model.build_model(str(REPO / config))
    model.set_prototypes(torch.randn(100, 256))
    ckpt = tmp_path / 'distiller.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1},
                'optimizer': {}}, ckpt)

    data = yaml.safe_load((REPO / 'configs/nckd/metafile.yml').read_text())
    data['Models'] = []
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text(yaml.safe_dump(data))
    # published inside the tree of model-index.yml (the repository root)
    (REPO / 'work_dirs').mkdir(exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(dir=REPO / 'work_dirs'))
    request.addfinalizer(lambda: shutil.rmtree(out_dir, ignore_errors=True))
    out = publish_model.main([
        str(ckpt), str(out_dir), '--name', name, '--metafile',
        str(metafile), '--config', config, '--dataset', 'CIFAR-100',
        '--top1', '1.0', '--flops', '12345', '--date', '20250101'])
    assert Path(out).name.startswith(f'{name}_20250101-')
    entry = yaml.safe_load(metafile.read_text())['Models'][0]
    assert entry['Name'] == name
    # relative to the repository root, '/'-separated
    assert entry['Weights'] == Path(out).relative_to(REPO).as_posix()
    # the one published form: the student's keys alone
    published = torch.load(out, map_location='cpu', weights_only=True)
    assert set(published['state_dict']) == {
        k for k in model.state_dict() if k.startswith('student.')}
    assert entry['Metadata']['FLOPs'] == 12345
    assert entry['Metadata']['Parameters'] == sum(
        p.numel() for p in model.student.parameters())
    assert entry['Metadata']['Training Data'] == 'CIFAR-100'

    try:
        assert register_model_index(str(metafile),
                                    config_prefix=str(REPO)) == [name]
        assert mmpretrain.list_models(name) == [name]
        assert ModelHub.get(name).weights == str(Path(out).resolve())
        loaded = mmpretrain.get_model(name, pretrained=True)
        ours, theirs = model.state_dict(), loaded.state_dict()
        for key in ours:
            if key.startswith('student.'):
                assert torch.equal(ours[key], theirs[key]), key
        # prototypes are not published: inference does not use them
        assert not bool(loaded.prototypes_ready)
    finally:
        ModelHub._models_dict.pop(name, None)


def test_publish_model_refuses_weights_outside_the_zoo_tree(tmp_path):
    ckpt = tmp_path / 'epoch_240.pth'
    plain_training_checkpoint(ckpt)
    metafile = tmp_path / 'metafile.yml'
    shutil.copy(REPO / 'configs/nckd/metafile.yml', metafile)
    before = metafile.read_text()
    with pytest.raises(ValueError, match='outside --root'):
        publish_model.main([
            str(ckpt), str(tmp_path / 'out'), '--name', CHEAP, '--metafile',
            str(metafile), '--config',
            'configs/nckd/nckd_resnet56_resnet20_cifar100.py'])
    assert not (tmp_path / 'out').exists()  # refused before writing
    assert metafile.read_text() == before
    with pytest.raises(ValueError, match='absolute path'):
        publish_model.update_metafile(str(metafile), {
            'Name': CHEAP, 'Weights': str(tmp_path / 'x.pth')})
    assert metafile.read_text() == before


def test_register_refuses_absolute_weights(tmp_path):
    data = yaml.safe_load((REPO / 'configs/kd/metafile.yml').read_text())
    entry = dict(data['Models'][0], Name='kd_abs_test_omniglot',
                 Weights='/somewhere/on/one/machine.pth')
    data['Models'] = [entry]
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match='absolute path'):
        register_model_index(str(metafile), config_prefix=str(REPO))
    assert not ModelHub.has('kd_abs_test_omniglot')  # nothing half-done


def test_zoo_weights_are_portable():
    """Every Weights is a URL or an existing repo-relative file, and zoo/
    holds exactly the files the metafiles name (nothing superseded)."""
    named = set()
    for path, _, model in all_models():
        weights = model.get('Weights')
        if not weights or weights.startswith(('http://', 'https://')):
            continue
        assert not Path(weights).is_absolute(), (model['Name'], weights)
        assert (REPO / weights).is_file(), (model['Name'], weights)
        named.add((REPO / weights).resolve())
        # registered as an absolute path of this checkout
        assert ModelHub.get(model['Name']).weights == str(
            (REPO / weights).resolve())
    on_disk = {p.resolve() for p in (REPO / 'zoo').rglob('*.pth')}
    assert on_disk == named


def test_publish_model_rejects_wrong_config(tmp_path):
    ckpt = tmp_path / 'epoch_240.pth'
    plain_training_checkpoint(ckpt)  # a ResNet-20
    with pytest.raises(ValueError, match='does not fit'):
        publish_model.main([
            str(ckpt), str(tmp_path / 'out'), '--name', ETF, '--config',
            'configs/nckd/nckd_resnet32x4_resnet8x4_cifar100.py'])
    assert not (tmp_path / 'out').exists()


def test_publish_model_without_config(tmp_path):
    ckpt = tmp_path / 'epoch_240.pth'
    state = plain_training_checkpoint(ckpt)
    out = publish_model.main([str(ckpt), str(tmp_path / 'out'), '--name',
                              'resnet20_1xb64_cifar100'])
    got = torch.load(out, map_location='cpu', weights_only=True)
    assert set(got['state_dict']) == set(state)
    # heuristic count: no BN statistics
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(REPO / 'configs/teachers/resnet20_cifar100.py'))
    params = sum(p.numel() for p in MODELS.build(cfg.model).parameters())
    assert publish_model.count_parameters(got['state_dict']) == params
    with pytest.raises(SystemExit):
        publish_model.main([str(ckpt), str(tmp_path / 'o2'), '--name',
                            'Bad Name'])


def _published_here():
    """The students trained and published from these machines' data."""
    import yaml
    entries = []
    for algo in ('nckd', 'kd', 'dkd'):
        with open(REPO / 'configs' / algo / 'metafile.yml') as f:
            for m in yaml.safe_load(f)['Models']:
                if (m['Name'].endswith(('_omniglot', '_fashion-mnist'))
                        and m.get('Weights')):
                    entries.append(m)
    return entries


def test_students_of_both_local_datasets_are_published():
    names = {m['Name'] for m in _published_here()}
    for algo in ('nckd', 'kd', 'dkd'):
        for data in ('omniglot', 'fashion-mnist'):
            assert any(n.startswith(algo + '_') and n.endswith('_' + data)
                       for n in names), (algo, data)


@pytest.mark.parametrize('entry', _published_here(), ids=lambda m: m['Name'])
def test_published_student_reproduces_its_top1(entry):
    """get_model() loads the published weights, and tools/test.py on them
    gives the top-1 written in the metafile."""
    import mmpretrain
    weights = REPO / entry['Weights']
    assert weights.is_file() and weights.stat().st_size < 5 * 2**20
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:8]
    assert weights.stem.endswith(digest)
    model = mmpretrain.get_model(entry['Name'], pretrained=True)
    state = torch.load(weights, weights_only=True)['state_dict']
    assert state and all(k.startswith('student.') for k in state)
    ours = model.state_dict()
    for key, value in state.items():
        assert torch.equal(ours[key], value), key
    assert set(torch.load(weights, weights_only=True)['meta']) <= set(
        publish_model.PUBLISHED_META)
    out = subprocess.run(
        [sys.executable, 'tools/test.py', entry['Config'], str(weights)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in (out.stdout + out.stderr).splitlines()
            if 'accuracy/top1:' in ln][-1]
    top1 = float(line.split('accuracy/top1:')[1].split()[0])
    expected = entry['Results'][0]['Metrics']['Top 1 Accuracy']
    assert top1 == pytest.approx(expected, abs=0.01)

"""The model zoo: metafile checks (in the spirit of mmpretrain's
``.dev_scripts/check_metafile.py``), registration in mmpretrain's ModelHub,
``get_model`` with a local checkpoint, and the published students."""
import hashlib
import re
from pathlib import Path

import mmpretrain
import pytest
import torch
import yaml
from mmpretrain.apis import ModelHub
from tool_utils import REPO, load_tool

import mmnckd  # noqa: F401
from mmnckd.apis.model_zoo import find_model_index, register_model_index

publish_model = load_tool('tools/model_converters/publish_model.py')
test_tool = load_tool('tools/test.py')

DATA_TAGS = {
    'cifar100': 'CIFAR-100',
    'in1k': 'ImageNet-1k',
    'omniglot': 'Omniglot',
    'fashion-mnist': 'Fashion-MNIST',
}

CHEAP = 'nckd_resnet56_resnet20_1xb64_cifar100'  # plug-in form
ETF = 'nckd_resnet32x4_resnet8x4_1xb64_cifar100'  # NC3 head


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
        unknown = set(model) - {
            'Name', 'Metadata', 'In Collection', 'Results', 'Weights',
            'Config', 'README', 'Paper', 'Code', 'Image'
        }
        assert not unknown, (name, unknown)


# {algo}_{teacher}_{student}_{N}xb{M}[-variant]_{data}, words joined by '-'
FIELD = r'[a-z0-9]+(?:[-.][a-z0-9]+)*'
DISTILLED = re.compile(
    rf'^(?P<algo>{FIELD})_(?P<teacher>{FIELD})_(?P<student>{FIELD})_'
    rf'(?P<gpus>\d+)xb(?P<batch>\d+)(?:-(?P<variant>{FIELD}))?'
    rf'_(?P<data>{FIELD})$')


def test_model_names():
    names = [m['Name'] for _, _, m in all_models()]
    assert len(names) == len(set(names)), 'duplicate model names'
    for path, data, model in all_models():
        name = model['Name']
        # mmpretrain's convention: the name is the config's basename
        assert name == Path(model['Config']).stem, name
        match = DISTILLED.match(name)
        assert match, (f'{name} does not follow {{algo}}_{{teacher}}_'
                       '{student}_{N}xb{M}[-variant]_{data}')
        assert match['algo'] == data['Collections'][0]['Name'].lower()
        data_tag = match['data']
        assert data_tag in DATA_TAGS, name
        assert model['Metadata']['Training Data'] == DATA_TAGS[data_tag]


def test_every_distillation_config_is_in_a_metafile():
    listed = {Path(m['Config']).stem for _, _, m in all_models()}
    for algo in ('kd', 'dkd', 'nckd'):
        for config in (REPO / 'configs' / algo).glob(f'{algo}_*.py'):
            match = DISTILLED.match(config.stem)
            assert match, config
            # variants ('-no-kd', ...) are ablations of a listed model
            if match['variant'] is None:
                assert config.stem in listed, config


def test_modelindex_parses_without_errors():
    from modelindex.load_model_index import load
    index = load(str(REPO / 'model-index.yml'))
    index.build_models_with_collections()
    # modelindex resolves README against the metafile's folder, mmpretrain
    # (and we) write it relative to the repository root: checked above.
    errors = [
        e for e in index.check(silent=True) if 'Path to README file' not in e
    ]
    assert not errors, errors
    assert len(index.models) == len(list(all_models()))


def test_register_lists_and_builds():
    names = register_model_index()
    assert register_model_index() == names  # idempotent
    nckd = sorted(m['Name'] for p, _, m in all_models()
                  if p.parent.name == 'nckd')
    assert mmpretrain.list_models('*nckd*') == nckd
    assert set(mmpretrain.list_models('kd_')) == {
        m['Name']
        for p, _, m in all_models() if p.parent.name == 'kd'
    }
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


def test_register_refuses_absolute_weights(tmp_path):
    data = yaml.safe_load((REPO / 'configs/kd/metafile.yml').read_text())
    entry = dict(
        data['Models'][0],
        Name='kd_abs_test_omniglot',
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
            assert any(
                n.startswith(algo + '_') and n.endswith('_' + data)
                for n in names), (algo, data)


@pytest.mark.slow
@pytest.mark.parametrize('entry', _published_here(), ids=lambda m: m['Name'])
def test_published_student_reproduces_its_top1(entry, tmp_path, monkeypatch):
    """get_model() loads the published weights, and tools/test.py on them
    gives the top-1 written in the metafile. The tool's ``main`` runs in
    this process (no second interpreter start) from the repository root, as
    the configs' data paths are relative to it, and reads the test images
    in this process (``num_workers=0``: the same images in the same order,
    without the worker processes a finished loader waits for here)."""
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
    monkeypatch.chdir(REPO)
    in_process = ('test_dataloader.num_workers=0',
                  'test_dataloader.persistent_workers=False')
    metrics = test_tool.main([
        entry['Config'],
        str(weights), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *in_process
    ])
    expected = entry['Results'][0]['Metrics']['Top 1 Accuracy']
    assert metrics['accuracy/top1'] == pytest.approx(expected, abs=0.01)

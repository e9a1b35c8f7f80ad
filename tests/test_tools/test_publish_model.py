"""tools/model_converters/publish_model.py: the published file (name, hash,
keys, ``weights_only``), the metafile entry it updates or adds, and what it
refuses."""
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import mmpretrain
import pytest
import torch
import yaml
from mmpretrain.apis import ModelHub
from tool_utils import REPO, load_tool

import mmnckd  # noqa: F401
from mmnckd.apis.model_zoo import register_model_index

TOOL = REPO / 'tools/model_converters/publish_model.py'
publish_model = load_tool(TOOL)

CHEAP = 'nckd_resnet56_resnet20_1xb64_cifar100'  # plug-in form
ETF = 'nckd_resnet32x4_resnet8x4_1xb64_cifar100'  # NC3 head


def plain_training_checkpoint(path: Path):
    """A plain ResNet-20 classifier checkpoint as training writes one (with
    optimizer, message hub and schedulers) -- the exported student of
    configs/nckd/nckd_resnet56_resnet20_1xb64_cifar100.py."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(
        str(REPO / 'configs/vanilla/resnet20_1xb64_cifar100.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    state = model.state_dict()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save(
        {
            'meta': {
                'epoch': 240,
                'iter': 187440,
                'seed': 0,
                'dataset_meta': {
                    'classes': tuple(f'c{i}' for i in range(100))
                }
            },
            'state_dict': state,
            'optimizer': opt.state_dict(),
            'param_schedulers': [{
                'milestones': [150, 180, 210]
            }],
            'message_hub': {
                'log_scalars': {}
            },
        }, path)
    return state


@pytest.mark.slow
def test_publish_model_cli_updates_entry(tmp_path):
    ckpt = tmp_path / 'epoch_240.pth'
    state = plain_training_checkpoint(ckpt)
    metafile = tmp_path / 'metafile.yml'
    shutil.copy(REPO / 'configs/nckd/metafile.yml', metafile)
    before = yaml.safe_load(metafile.read_text())
    out_dir = tmp_path / 'published'
    cmd = [
        sys.executable,
        str(TOOL),
        str(ckpt),
        str(out_dir), '--name', CHEAP, '--metafile',
        str(metafile), '--config',
        'configs/nckd/nckd_resnet56_resnet20_1xb64_cifar100.py', '--dataset',
        'CIFAR-100', '--top1', '70.123', '--top5', '91.5', '--weights-url',
        'https://example.org/mmnckd/nckd/', '--input-shape', '3', '32', '32'
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
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
    bare = subprocess.run([
        sys.executable, '-c',
        f'import torch; ck = torch.load({str(published)!r}, '
        f'weights_only=True); print(sorted(ck))'
    ],
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert bare.returncode == 0, bare.stderr

    # the existing entry is updated in place, the others untouched
    after = yaml.safe_load(metafile.read_text())
    assert [m['Name'] for m in after['Models']] == \
        [m['Name'] for m in before['Models']]
    old = next(m for m in before['Models'] if m['Name'] == CHEAP)
    new = next(m for m in after['Models'] if m['Name'] == CHEAP)
    assert new['Results'] == [{
        'Task': 'Image Classification',
        'Dataset': 'CIFAR-100',
        'Metrics': {
            'Top 1 Accuracy': 70.12,
            'Top 5 Accuracy': 91.5
        }
    }]
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
    # a new entry's config (named like its model) inside the repository
    (REPO / 'work_dirs').mkdir(exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(dir=REPO / 'work_dirs'))
    request.addfinalizer(lambda: shutil.rmtree(out_dir, ignore_errors=True))
    name = 'nckd_resnet32x4_resnet8x4_1xb64-test_cifar100'
    base = REPO / 'configs/nckd/nckd_resnet32x4_resnet8x4_1xb64_cifar100.py'
    (out_dir / f'{name}.py').write_text(f'_base_ = [{str(base)!r}]\n')
    config = (out_dir / f'{name}.py').relative_to(REPO).as_posix()
    _, model = publish_model.build_model(str(REPO / config))
    model.set_prototypes(torch.randn(100, 256))
    ckpt = tmp_path / 'distiller.pth'
    torch.save(
        {
            'state_dict': model.state_dict(),
            'meta': {
                'epoch': 1
            },
            'optimizer': {}
        }, ckpt)

    data = yaml.safe_load((REPO / 'configs/nckd/metafile.yml').read_text())
    data['Models'] = []
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text(yaml.safe_dump(data))
    # published inside the tree of model-index.yml (the repository root)
    out = publish_model.main([
        str(ckpt),
        str(out_dir), '--metafile',
        str(metafile), '--config', config, '--dataset', 'CIFAR-100', '--top1',
        '1.0', '--flops', '12345', '--date', '20250101'
    ])
    assert Path(out).name.startswith(f'{name}_20250101-')
    entry = yaml.safe_load(metafile.read_text())['Models'][0]
    assert entry['Name'] == name
    # relative to the repository root, '/'-separated
    assert entry['Weights'] == Path(out).relative_to(REPO).as_posix()
    # the one published form: the student's keys alone
    published = torch.load(out, map_location='cpu', weights_only=True)
    assert set(published['state_dict']) == {
        k
        for k in model.state_dict() if k.startswith('student.')
    }
    assert entry['Metadata']['FLOPs'] == 12345
    assert entry['Metadata']['Parameters'] == sum(
        p.numel() for p in model.student.parameters())
    assert entry['Metadata']['Training Data'] == 'CIFAR-100'

    try:
        assert register_model_index(
            str(metafile), config_prefix=str(REPO)) == [name]
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
            str(ckpt),
            str(tmp_path / 'out'), '--name', CHEAP, '--metafile',
            str(metafile), '--config',
            'configs/nckd/nckd_resnet56_resnet20_1xb64_cifar100.py'
        ])
    assert not (tmp_path / 'out').exists()  # refused before writing
    assert metafile.read_text() == before
    with pytest.raises(ValueError, match='absolute path'):
        publish_model.update_metafile(
            str(metafile), {
                'Name': CHEAP,
                'Weights': str(tmp_path / 'x.pth')
            })
    assert metafile.read_text() == before


def test_publish_model_rejects_wrong_config(tmp_path):
    ckpt = tmp_path / 'epoch_240.pth'
    plain_training_checkpoint(ckpt)  # a ResNet-20
    with pytest.raises(ValueError, match='does not fit'):
        publish_model.main([
            str(ckpt),
            str(tmp_path / 'out'), '--name', ETF, '--config',
            'configs/nckd/nckd_resnet32x4_resnet8x4_1xb64_cifar100.py'
        ])
    assert not (tmp_path / 'out').exists()


def test_publish_model_without_config(tmp_path):
    ckpt = tmp_path / 'epoch_240.pth'
    state = plain_training_checkpoint(ckpt)
    out = publish_model.main([
        str(ckpt),
        str(tmp_path / 'out'), '--name', 'resnet20_1xb64_cifar100'
    ])
    got = torch.load(out, map_location='cpu', weights_only=True)
    assert set(got['state_dict']) == set(state)
    # heuristic count: no BN statistics
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(
        str(REPO / 'configs/vanilla/resnet20_1xb64_cifar100.py'))
    params = sum(p.numel() for p in MODELS.build(cfg.model).parameters())
    assert publish_model.count_parameters(got['state_dict']) == params
    with pytest.raises(SystemExit):
        publish_model.main(
            [str(ckpt), str(tmp_path / 'o2'), '--name', 'Bad Name'])


def test_publish_model_names_the_entry_after_its_config(tmp_path):
    ckpt = tmp_path / 'epoch_240.pth'
    plain_training_checkpoint(ckpt)
    metafile = tmp_path / 'metafile.yml'
    shutil.copy(REPO / 'configs/nckd/metafile.yml', metafile)
    before = metafile.read_text()
    with pytest.raises(SystemExit, match='differs from the basename'):
        publish_model.main([
            str(ckpt),
            str(tmp_path / 'out'), '--name', 'nckd_other_name_1xb64_cifar100',
            '--metafile',
            str(metafile), '--weights-url', 'https://h/', '--config',
            'configs/nckd/nckd_resnet56_resnet20_1xb64_cifar100.py'
        ])
    assert metafile.read_text() == before
    assert not (tmp_path / 'out').exists()

"""mmnckd's model zoo in mmpretrain's ``ModelHub``.

After :func:`register_model_index`, ``mmpretrain.list_models('*nckd*')``
lists mmnckd's models and ``mmpretrain.get_model(name, pretrained=...)``
builds them from their configs.

The zoo is ``model-index.yml`` (it imports ``configs/*/metafile.yml``),
found at the repository root for a source / editable install, or in
``mmnckd/.mim/`` where ``setup.py`` copies it for an installed package. The
config paths and local ``Weights`` paths in the metafiles are relative to
the directory of ``model-index.yml``, which is where ``configs/`` and
``zoo/`` live in both layouts; registration turns them into absolute paths
of this installation, so ``get_model(name, pretrained=True)`` works from
any working directory. ``Weights`` may also be an http(s) URL (downloaded to
the torch hub cache and loaded under ``weights_only=True``).
"""
import os.path as osp
import re
from typing import List, Optional

_PKG_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
# names this module registered, by model-index path, so that a second call
# replaces them instead of tripping ModelHub's duplicate-name check
_REGISTERED = {}


def find_model_index() -> str:
    """The path of mmnckd's ``model-index.yml``.

    Looks in the repository root (the parent of the ``mmnckd`` package:
    source checkout / editable install) and then in ``mmnckd/.mim/``
    (installed package).
    """
    candidates = [
        osp.join(osp.dirname(_PKG_DIR), 'model-index.yml'),
        osp.join(_PKG_DIR, '.mim', 'model-index.yml'),
    ]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        'mmnckd model-index.yml not found; looked in ' +
        ', '.join(candidates) + '. Reinstall mmnckd (pip install -e .) so '
        'that setup.py links or copies it into mmnckd/.mim.')


def register_model_index(model_index_path: Optional[str] = None,
                         config_prefix: Optional[str] = None) -> List[str]:
    """Register mmnckd's models in ``mmpretrain.apis.ModelHub``.

    Idempotent: calling it again re-reads the index and replaces the models
    registered by the previous call from the same file (so entries added
    meanwhile, e.g. by ``tools/model_converters/publish_model.py``, appear),
    instead of raising ModelHub's "model name is conflict" error.

    Args:
        model_index_path (str, optional): A model-index file (or a metafile
            with ``Collections``/``Models``). Defaults to mmnckd's own
            (:func:`find_model_index`).
        config_prefix (str, optional): The directory the ``Config`` paths
            are relative to. Defaults to the directory of
            ``model_index_path``.

    Returns:
        list[str]: The registered model names (lower case, as ModelHub keys
        them).

    Raises:
        ValueError: A name is already registered by another model index
            (e.g. mmpretrain's own zoo).
    """
    from mmpretrain.apis import ModelHub
    from modelindex.load_model_index import load

    path = osp.abspath(model_index_path or find_model_index())
    prefix = config_prefix or osp.dirname(path)
    index = load(path)
    names = [model.name.lower() for model in index.models]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f'{path} lists these model names more than once: '
                         f'{dup}.')

    hub = ModelHub._models_dict
    previous = _REGISTERED.get(path, [])
    for name in names:
        if name in hub and name not in previous:
            raise ValueError(
                f'Model name {name!r} of {path} is already registered in '
                f'mmpretrain.apis.ModelHub from '
                f'{osp.abspath(hub[name].filepath)}: rename the model.')
    for name in previous:  # our own earlier registration: replace it
        hub.pop(name, None)
    try:
        ModelHub.register_model_index(path, config_prefix=prefix)
        for name in names:
            hub[name].weights = resolve_weights(hub[name].weights, prefix,
                                                name)
    except Exception:
        for name in names:
            hub.pop(name, None)
        _REGISTERED.pop(path, None)
        raise
    _REGISTERED[path] = names
    return names


def resolve_weights(weights: Optional[str],
                    prefix: str,
                    name: str = '') -> Optional[str]:
    """A metafile ``Weights`` value as ``load_checkpoint`` takes it.

    URLs and ``None`` are returned unchanged; a relative path is joined to
    ``prefix`` (the directory of ``model-index.yml``).

    Raises:
        ValueError: ``weights`` is an absolute path, which only exists on
            the machine that published it.
    """
    if weights is None or '://' in weights:
        return weights
    if osp.isabs(weights) or re.match(r'^[A-Za-z]:[\\/]', weights):
        raise ValueError(
            f'Model {name!r}: Weights {weights!r} is an absolute path; a '
            f'metafile must give weights relative to the directory of '
            f'model-index.yml (or as a URL).')
    return osp.normpath(osp.join(prefix, weights))

"""mmnckd: Neural-Collapse-inspired Knowledge Distillation for mmpretrain.

``import mmnckd`` (or ``custom_imports=dict(imports=['mmnckd'])`` in a config)
registers every mmnckd class into mmpretrain's registries (MODELS, HOOKS,
METRICS, DATASETS), the ``'atomic_local'`` file backend (all-or-nothing
checkpoint writes, see :mod:`mmnckd.engine.fileio`) with mmengine's
``register_backend``, and mmnckd's model zoo (``model-index.yml``) with
mmpretrain's ``ModelHub``; it allow-lists the types mmengine writes into
checkpoints and makes every mmengine ``CheckpointLoader`` scheme (local paths,
http(s) URLs, ...) load with ``weights_only=True`` (URLs are downloaded to the
torch hub cache first), so a checkpoint that pickles code is refused.
"""
from .utils.safe_load import (register_safe_checkpoint_loaders,
                              register_safe_globals)
from .version import __version__

register_safe_globals()
# every CheckpointLoader scheme (local, http(s), ...) loads weights_only=True
register_safe_checkpoint_loaders()

from . import apis, datasets, engine, evaluation, models  # noqa: E402,F401
from .apis.model_zoo import register_model_index  # noqa: E402

# mmpretrain.list_models('*nckd*') / get_model(name) see our zoo
register_model_index()

__all__ = ['__version__', 'apis', 'datasets', 'engine', 'evaluation', 'models']

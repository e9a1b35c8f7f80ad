"""mmnckd: Neural-Collapse-inspired Knowledge Distillation for mmpretrain.

``import mmnckd`` (or ``custom_imports=dict(imports=['mmnckd'])`` in a config)
registers every mmnckd class into mmpretrain's registries (MODELS, HOOKS,
METRICS, DATASETS) and mmnckd's model zoo (``model-index.yml``) with
mmpretrain's ``ModelHub``, and allow-lists the types mmengine writes into checkpoints,
so checkpoints load under torch's default ``weights_only=True``.
"""
from .utils.safe_load import register_safe_globals
from .version import __version__

register_safe_globals()

from . import apis, datasets, engine, evaluation, models  # noqa: E402,F401
from .apis.model_zoo import register_model_index  # noqa: E402

# mmpretrain.list_models('*nckd*') / get_model(name) see our zoo
register_model_index()

__all__ = ['__version__', 'apis', 'datasets', 'engine', 'evaluation', 'models']

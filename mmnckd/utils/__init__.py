from .launch import (default_work_dir, init_cpu_distributed,
                     set_dataloader_defaults, shutdown_distributed)
from .loaders import innermost_dataset, train_pass_loader_cfg
from .safe_load import (CheckpointDownloadError, CorruptCheckpointError,
                        UnsafeCheckpointError, download_checkpoint,
                        load_url_weights_only,
                        register_safe_checkpoint_loaders,
                        register_safe_globals, safe_globals, safe_torch_load)

__all__ = [
    'register_safe_globals', 'safe_globals',
    'register_safe_checkpoint_loaders', 'safe_torch_load',
    'download_checkpoint', 'load_url_weights_only', 'UnsafeCheckpointError',
    'CorruptCheckpointError', 'CheckpointDownloadError',
    'init_cpu_distributed', 'set_dataloader_defaults', 'default_work_dir',
    'shutdown_distributed', 'innermost_dataset', 'train_pass_loader_cfg'
]

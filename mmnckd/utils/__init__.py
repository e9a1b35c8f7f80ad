from .launch import (default_work_dir, init_cpu_distributed,
                     set_dataloader_defaults, shutdown_distributed)
from .loaders import innermost_dataset, train_pass_loader_cfg
from .safe_load import register_safe_globals, safe_globals

__all__ = [
    'register_safe_globals', 'safe_globals', 'init_cpu_distributed',
    'set_dataloader_defaults', 'default_work_dir', 'shutdown_distributed',
    'innermost_dataset', 'train_pass_loader_cfg'
]

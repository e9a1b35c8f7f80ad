from .launch import (default_work_dir, drop_disabled_hooks,
                     init_cpu_distributed, set_dataloader_defaults,
                     shutdown_distributed)
from .loaders import innermost_dataset, train_pass_loader_cfg
from .safe_load import (CheckpointDownloadError, CorruptCheckpointError,
                        UnsafeCheckpointError, download_checkpoint,
                        load_url_weights_only,
                        register_safe_checkpoint_loaders,
                        register_safe_globals, safe_globals, safe_torch_load)
from .single_sample_batches import (batch_norm_layers,
                                    check_batch_norm_batches,
                                    single_sample_batch)
from .state_check import (check_finite, check_state_matches, names_sha256,
                          non_finite_entries, strip_prefix, weights_sha256)

__all__ = [
    'register_safe_globals', 'safe_globals',
    'register_safe_checkpoint_loaders', 'safe_torch_load',
    'download_checkpoint', 'load_url_weights_only', 'UnsafeCheckpointError',
    'CorruptCheckpointError', 'CheckpointDownloadError',
    'init_cpu_distributed', 'drop_disabled_hooks', 'set_dataloader_defaults',
    'default_work_dir', 'shutdown_distributed', 'innermost_dataset',
    'train_pass_loader_cfg', 'check_finite', 'check_state_matches',
    'non_finite_entries', 'strip_prefix', 'weights_sha256', 'names_sha256',
    'check_batch_norm_batches', 'batch_norm_layers', 'single_sample_batch'
]

# Runtime shared by mmnckd configs (mmpretrain's default runtime plus the
# custom import of mmnckd).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmnckd'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # 'atomic_local' (mmnckd.engine.fileio.AtomicLocalBackend, registered
    # by the custom import below): a checkpoint is written to a temporary
    # file and renamed into place, so a full disk never leaves a partial
    # epoch_N.pth; the error names the file and the bytes needed and free.
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # every process's random state in the checkpoints: bit-exact --resume
    random_state=dict(type='RandomStateHook'),
    # the epoch DKD's warm-up reads, also under an IterBasedTrainLoop
    epoch_info=dict(type='EpochInfoHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # nccl on GPUs; without a GPU tools/train.py uses gloo.
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)

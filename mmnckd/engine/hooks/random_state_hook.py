"""RandomStateHook: checkpoints carry every process's random state.

mmengine's ``--resume`` restores the weights, the optimizer, the schedulers
and the epoch, and re-seeds the random generators from the config's seed.
The random augmentation (``RandomCrop``'s offsets, ``RandomFlip``'s coins,
Mixup's ``lambda``...) then draws other numbers than the uninterrupted run
did after that epoch, so the resumed run diverges from its first step.

This hook saves, with each checkpoint, the state of Python's ``random``,
NumPy's global generator and torch's CPU (and CUDA) generators of every
process (gathered to rank 0, which writes the checkpoint), and puts each
process's state back when training resumes. The DataLoader's sampler
(``DefaultSampler``: seed + epoch) and dataloader workers started per epoch
(``persistent_workers=False``, seeded from the config's seed or from torch's
generator) follow from these. Validation during training draws from its own
copy of the state, so a run that validates between two epochs and one that
resumed there draw the same numbers. Resume is then bit-exact for
epoch-based loops; with ``persistent_workers=True`` the workers' own
generators live on between epochs and cannot be restored (a warning says
so).
"""
import random
import warnings
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmpretrain.registry import HOOKS

#: The checkpoint key the states are saved under.
CHECKPOINT_KEY = 'random_state'


def get_random_state() -> dict:
    """This process's generator states, in types ``weights_only`` loads."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = dict(
        python=[py_version, list(py_state), py_gauss],
        numpy=[
            name,
            torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss
        ],
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_random_state(state: dict) -> None:
    """Put back a state of :func:`get_random_state`."""
    py_version, py_state, py_gauss = state['python']
    random.setstate((py_version, tuple(py_state), py_gauss))
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state(
        (name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every process's random state in checkpoints; restore it on
    resume (see the module docstring).

    Its ``after_train_epoch``/``after_train_iter`` run before
    ``CheckpointHook``'s (priority ``LOW`` vs ``VERY_LOW``) and gather the
    states of all processes when a checkpoint is about to be written.
    """

    priority = 'LOW'

    def __init__(self):
        self._gathered: Optional[list] = None
        self._to_restore: Optional[dict] = None
        self._outside_val: Optional[dict] = None
        self._training = False

    # ------------------------------------------------------------- saving
    @staticmethod
    def _checkpoint_hook(runner) -> Optional[CheckpointHook]:
        return next((h for h in runner.hooks if isinstance(h, CheckpointHook)),
                    None)

    def _gather(self) -> None:
        # every process takes part; rank 0 writes the list
        self._gathered = all_gather_object(get_random_state())

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        ckpt = self._checkpoint_hook(runner)
        if ckpt is None or ckpt.by_epoch:
            return
        if ckpt.every_n_train_iters(runner, ckpt.interval, ckpt.save_begin) \
                or (ckpt.save_last and ckpt.is_last_train_iter(runner)):
            self._gather()

    def after_train_epoch(self, runner) -> None:
        ckpt = self._checkpoint_hook(runner)
        if ckpt is None or ckpt.by_epoch:
            self._gather()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._gathered is not None:
            checkpoint[CHECKPOINT_KEY] = dict(
                world_size=len(self._gathered), states=self._gathered)

    # ----------------------------------------------------------- resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY)
        if not getattr(runner, '_resume', False):
            return  # load_from or testing: weights only
        if saved is None:
            runner.logger.warning(
                'The resumed checkpoint holds no random state (written '
                'without RandomStateHook): the generators are re-seeded, '
                'so random augmentation differs from the uninterrupted run.')
            return
        if saved['world_size'] != get_world_size():
            runner.logger.warning(
                f'The resumed checkpoint holds the random state of '
                f'{saved["world_size"]} processes, this run has '
                f'{get_world_size()}: the generators are re-seeded, so random '
                f'augmentation differs from the uninterrupted run.')
            return
        self._to_restore = saved['states'][get_rank()]

    def before_train(self, runner) -> None:
        # after Runner.resume's own re-seeding and the other before_train
        # hooks of higher priority
        self._training = True
        if self._to_restore is None:
            return
        set_random_state(self._to_restore)
        self._to_restore = None
        runner.logger.info('Random state restored from the checkpoint.')
        loader = runner.cfg.get('train_dataloader') or {}
        if loader.get('num_workers', 0) and loader.get('persistent_workers'):
            warnings.warn(
                'train_dataloader.persistent_workers=True: the dataloader '
                'workers keep their random generators from epoch to epoch, '
                'which a checkpoint cannot hold, so random augmentation after '
                '--resume differs from the uninterrupted run. Set '
                'persistent_workers=False for a bit-exact resume.')

    # ------------------------------------ validation draws from a copy
    def after_train(self, runner) -> None:
        self._training = False

    def before_val_epoch(self, runner) -> None:
        if self._training:  # validation during training
            self._outside_val = get_random_state()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._outside_val is not None:
            set_random_state(self._outside_val)
            self._outside_val = None

"""EpochInfoHook: the epoch the losses see under an iteration-based loop.

mmengine's ``IterBasedTrainLoop`` never advances the epoch (the message
hub's ``epoch`` stays 0), so a loss that schedules by epoch (``DKDLoss``'s
warm-up) would stay at its first-epoch value for the whole run. This hook
writes ``iters_per_epoch = len(train_dataloader)`` into the message hub
before training when the loop is not epoch-based; the distillers then give
the losses ``epoch = iter // iters_per_epoch``, the number of completed
passes over the training set. Under ``EpochBasedTrainLoop`` it writes None
and the epoch is the loop's own.
"""
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class EpochInfoHook(Hook):
    """Tell the distillers how many iterations make an epoch when the train
    loop is iteration-based (see the module docstring)."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
        runner.message_hub.update_info(
            'iters_per_epoch',
            None if by_epoch else len(runner.train_dataloader))

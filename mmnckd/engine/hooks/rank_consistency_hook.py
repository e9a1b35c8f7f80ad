"""RankConsistencyHook: check that every rank holds the same model state.

Data-parallel training must keep parameters and the buffers that mmnckd
synchronises itself (teacher prototypes, the NC2 memory of student class
means, the ETF head weight) identical on all ranks. After every
``interval`` epochs and at the end of training this hook reduces each
floating-point state tensor to a float64 fingerprint ``(sum x, sum x^2)``,
gathers the fingerprints of all ranks and raises, naming the first keys
that differ, if they do not agree to ``rtol``. Cheap: two scalars per tensor.
"""
import torch
from mmengine.dist import all_gather, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class RankConsistencyHook(Hook):
    """Raise if the model state differs between ranks.

    Args:
        interval (int): Check every ``interval`` epochs (and after training).
        rtol (float): Relative tolerance of the fingerprints. BatchNorm
            running statistics are not synchronised by DDP unless SyncBN is
            used, so they are skipped by default (``skip_bn_stats``).
        skip_bn_stats (bool): Skip ``running_mean``/``running_var`` buffers.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 1,
                 rtol: float = 1e-6,
                 skip_bn_stats: bool = True):
        self.interval = interval
        self.rtol = rtol
        self.skip_bn_stats = skip_bn_stats

    def _fingerprints(self, model):
        names, prints = [], []
        for name, value in model.state_dict().items():
            if not torch.is_tensor(value) or not value.is_floating_point():
                continue
            stats = ('running_mean', 'running_var')
            if self.skip_bn_stats and name.endswith(stats):
                continue
            v = value.detach().double()
            names.append(name)
            prints.append(torch.stack([v.sum(), (v * v).sum()]))
        return names, torch.stack(prints) if prints else torch.zeros(0, 2)

    def check(self, runner) -> None:
        if get_world_size() < 2:
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        names, prints = self._fingerprints(model)
        gathered = all_gather(prints)
        ref = gathered[0]
        bad = set()
        for other in gathered[1:]:
            close = torch.isclose(other, ref, rtol=self.rtol, atol=1e-12)
            bad.update(i for i in range(len(names)) if not close[i].all())
        if bad:
            keys = [names[i] for i in sorted(bad)]
            raise RuntimeError(
                f'Model state differs across {len(gathered)} ranks in '
                f'{len(keys)} tensors, e.g. {keys[:5]}.')
        runner.logger.info(f'Model state identical on {len(gathered)} ranks '
                           f'({len(names)} tensors checked).')

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval):
            self.check(runner)

    def after_train(self, runner) -> None:
        self.check(runner)

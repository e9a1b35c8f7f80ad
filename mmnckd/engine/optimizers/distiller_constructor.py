"""DistillerOptimWrapperConstructor: optimise what a distiller trains.

mmengine's default constructor hands the optimizer every parameter of the
model and, with a ``paramwise_cfg``, logs a warning for each frozen one: for
a distiller that is the whole teacher (hundreds of lines for a ResNet-50).
This constructor builds the optimizer from the distiller's children other
than ``teacher`` (the student, the projector, loss parameters), with the
same names, so ``paramwise_cfg`` keys such as ``log_scale`` still match.
Frozen parameters (``requires_grad=False``, e.g. SimKD's reused teacher
classifier in the student's ``FrozenLinearClsHead``) are left out too.
Everything else is mmengine's ``DefaultOptimWrapperConstructor``.

    optim_wrapper = dict(constructor='DistillerOptimWrapperConstructor', ...)
"""
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS


class _WithoutTeacher(nn.Module):
    """A view of a model's children and direct parameters minus the
    teacher (shares the modules; owns nothing). Its ``parameters()``, which
    mmengine hands to the optimizer without a ``paramwise_cfg``, are the
    trainable ones; with a ``paramwise_cfg`` mmengine skips frozen ones
    itself."""

    def __init__(self, model: nn.Module):
        super().__init__()
        for name, child in model.named_children():
            if name != 'teacher':
                self.add_module(name, child)
        for name, param in model.named_parameters(recurse=False):
            self.register_parameter(name, param)

    def parameters(self, recurse: bool = True):
        return (p for p in super().parameters(recurse) if p.requires_grad)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillerOptimWrapperConstructor(DefaultOptimWrapperConstructor):

    def __call__(self, model: nn.Module):
        if hasattr(model, 'module'):  # DDP wrapper
            model = model.module
        return super().__call__(_WithoutTeacher(model))

"""PreLogitsHook: let any mmpretrain classifier feed ``NCMetric``.

``NCMetric`` reads each prediction's pre-logit feature (``pre_logits``) and
the classifier weight (``cls_weight``). The NCKD distiller attaches them
itself; for a plain ``ImageClassifier`` this hook wraps its head's
``predict`` during validation and testing so that it attaches them too
(``mmnckd.models.utils.attach_features``), and unwraps it afterwards.

    custom_hooks = [dict(type='PreLogitsHook')]
    val_evaluator = [dict(type='Accuracy'), dict(type='NCMetric')]
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...models.utils import attach_features


@HOOKS.register_module()
class PreLogitsHook(Hook):

    priority = 'NORMAL'

    @staticmethod
    def _head(runner):
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if hasattr(model, 'predict_features'):  # NCKDDistiller does it
            return None
        head = getattr(model, 'head', None)
        if head is None or not hasattr(head, 'pre_logits'):
            raise TypeError(
                f'PreLogitsHook needs a classifier with a head that has '
                f'pre_logits(), got {type(model).__name__}.')
        return head

    def _wrap(self, runner) -> None:
        head = self._head(runner)
        if head is None or 'predict' in head.__dict__:
            return
        original = head.predict

        def predict(feats, data_samples=None, **kwargs):
            preds = original(feats, data_samples, **kwargs)
            return attach_features(preds, head.pre_logits(feats), head)

        head.predict = predict

    def _unwrap(self, runner) -> None:
        head = self._head(runner)
        if head is not None:
            head.__dict__.pop('predict', None)

    def before_val(self, runner) -> None:
        self._wrap(runner)

    def after_val(self, runner) -> None:
        self._unwrap(runner)

    def before_test(self, runner) -> None:
        self._wrap(runner)

    def after_test(self, runner) -> None:
        self._unwrap(runner)

"""DistillerOptimWrapperConstructor: the student's parameters only."""
from small_models import distiller


def test_optimizer_holds_student_params_only(caplog):
    from mmnckd.engine.optimizers import DistillerOptimWrapperConstructor
    model = distiller()
    constructor = DistillerOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4)),
        paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.)}))
    optim = constructor(model).optimizer
    in_optim = {id(p) for g in optim.param_groups for p in g['params']}
    teacher = {id(p) for p in model.teacher.parameters()}
    trainable = {
        id(p)
        for n, p in model.named_parameters() if not n.startswith('teacher.')
    }
    assert in_optim == trainable and not in_optim & teacher
    scale_group = [
        g for g in optim.param_groups
        if g['params'][0] is model.student.head.log_scale
    ]
    assert scale_group[0]['weight_decay'] == 0.0
    assert 'is skipped since its requires_grad' not in caplog.text

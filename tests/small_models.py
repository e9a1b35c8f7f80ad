"""Tiny mmpretrain classifiers shared by the distiller tests (1x28x28 input,
K classes): a 32-d teacher and an NCKD student (MLP projector + ETF head)."""
K = 6
D_T = 32  # teacher feature dim (ResNet_CIFAR-18 at width 4)


def classifier(width, head=None, neck=None, **kwargs):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1,
                      stem_channels=width, base_channels=width,
                      strides=(2, 2, 2, 2), out_indices=(3, )),
        neck=neck or dict(type='GlobalAveragePooling'),
        head=head or dict(type='LinearClsHead', num_classes=K,
                          in_channels=8 * width),
        **kwargs)


TEACHER = classifier(4)
NC_STUDENT = classifier(
    2, neck=dict(type='Projector', in_channels=16, out_channels=D_T,
                 hidden_channels=32, mode='mlp'),
    head=dict(type='ETFHead', num_classes=K, in_channels=D_T,
              learnable_scale=True))

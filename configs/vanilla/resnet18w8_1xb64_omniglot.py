# The Omniglot student trained alone (the "student alone" baseline).
_base_ = [
    '../_base_/models/omniglot_resnet18_w8.py',
    '../_base_/datasets/omniglot_bs64.py',
    '../_base_/schedules/small_sgd_cosine.py',
    '../_base_/default_runtime.py',
]

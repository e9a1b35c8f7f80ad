# Teacher on Omniglot-242: bash tools/dist_train.sh THIS_CONFIG 2
_base_ = [
    '../_base_/models/omniglot_resnet18_w32.py',
    '../_base_/datasets/omniglot_bs64.py',
    '../_base_/schedules/small_sgd_cosine.py',
    '../_base_/default_runtime.py',
]

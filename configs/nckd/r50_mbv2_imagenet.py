# The documented entry point: NCKD, ResNet-50 -> MobileNetV2 on ImageNet-1k.
#   bash tools/dist_train.sh configs/nckd/r50_mbv2_imagenet.py 8
_base_ = ['./nckd_resnet50_mobilenetv2_8xb32_in1k.py']

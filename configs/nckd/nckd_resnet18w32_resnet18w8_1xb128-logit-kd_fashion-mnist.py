_base_ = ['./nckd_resnet18w32_resnet18w8_1xb128_fashion-mnist.py']
model = dict(kd_target='logits')

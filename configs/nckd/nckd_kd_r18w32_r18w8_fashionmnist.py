# NCKD + Hinton KD on the teacher's *logits* on Fashion-MNIST (the default
# uses the teacher's prototype-cosine logits instead).
_base_ = ['./nckd_r18w32_r18w8_fashionmnist.py']

model = dict(kd_target='logits')

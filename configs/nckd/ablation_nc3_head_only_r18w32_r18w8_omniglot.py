# Ablation: the NC3 head only (fixed cosine classifier from the teacher
# prototypes, trained with cross-entropy; no NC1/NC2/KD loss).
_base_ = ['./nckd_r18w32_r18w8_omniglot.py']
model = dict(kd_target='logits', distill_losses=dict(_delete_=True))

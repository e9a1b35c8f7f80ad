from .etf import etf_gram, nearest_simplex_etf, simplex_etf
from .features import attach_features, classifier_weight
from .global_batch_norm import GlobalBatchNorm1d

__all__ = [
    'simplex_etf', 'nearest_simplex_etf', 'etf_gram', 'attach_features',
    'classifier_weight', 'GlobalBatchNorm1d'
]

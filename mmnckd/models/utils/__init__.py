from .etf import etf_gram, nearest_simplex_etf, simplex_etf

__all__ = ['simplex_etf', 'nearest_simplex_etf', 'etf_gram']

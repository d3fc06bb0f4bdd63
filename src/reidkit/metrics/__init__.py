"""Distances, ranking metrics (CMC / mAP / mINP), k-reciprocal re-ranking and query expansion.

See docs/architecture.md ("Metrics") for the contracts; each module's docstring says which reference
implementation it reproduces and how closely. Names are imported on first use: `re_ranking` runs on
numpy/scipy alone and should not pay for torch and scikit-learn, which the other modules import.
"""
from reidkit.utils.lazy import lazy_attributes

_SOURCES = {
    "MetricInputError": "reidkit.metrics._checks",
    "METRICS": "reidkit.metrics.distance",
    "compute_distance_matrix": "reidkit.metrics.distance",
    "iter_distance_blocks": "reidkit.metrics.distance",
    "alpha_query_expansion": "reidkit.metrics.query_expansion",
    "average_query_expansion": "reidkit.metrics.query_expansion",
    "dbscan_query_expansion": "reidkit.metrics.query_expansion",
    "RANK_PROTOCOLS": "reidkit.metrics.rank",
    "evaluate_rank": "reidkit.metrics.rank",
    "evaluate_rank_from_features": "reidkit.metrics.rank",
    "query_average_precision": "reidkit.metrics.rank",
    "re_ranking": "reidkit.metrics.rerank",
    "re_ranking_from_features": "reidkit.metrics.rerank",
    "verification_roc": "reidkit.metrics.verification",
}
__getattr__ = lazy_attributes(__name__, _SOURCES)
__all__ = sorted(_SOURCES)

"""Distances, ranking metrics (CMC / mAP / mINP), k-reciprocal re-ranking and query expansion.

See docs/architecture.md ("Metrics") for the contracts; each module's docstring says which reference
implementation it reproduces and how closely.
"""
from reidkit.metrics._checks import MetricInputError
from reidkit.metrics.distance import METRICS, compute_distance_matrix, iter_distance_blocks
from reidkit.metrics.query_expansion import (alpha_query_expansion, average_query_expansion,
                                             dbscan_query_expansion)
from reidkit.metrics.rank import PROTOCOLS, evaluate_rank, evaluate_rank_from_features
from reidkit.metrics.rerank import re_ranking, re_ranking_from_features

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "MetricInputError",
    "alpha_query_expansion",
    "average_query_expansion",
    "compute_distance_matrix",
    "dbscan_query_expansion",
    "evaluate_rank",
    "evaluate_rank_from_features",
    "iter_distance_blocks",
    "re_ranking",
    "re_ranking_from_features",
]

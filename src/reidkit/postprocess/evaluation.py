"""Score every stage of the chain (mAP / Rank-1 with reidkit.metrics) and print them as one ablation table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

STAGE_LABELS = {"raw": "raw features", "query_expansion": "+ DBSCAN query expansion",
                "track_smoothing": "+ track smoothing", "camera_penalties": "+ camera / direction penalties",
                "suppression": "+ progressive same-camera suppression", "re_ranking": "+ re-ranking (full chain)"}


@dataclass(frozen=True)
class StageScore:
    stage: str
    mAP: float
    rank1: float
    rank5: float


def score_distances(distances: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_cams: np.ndarray,
                    g_cams: np.ndarray) -> tuple[float, float, float]:
    """(mAP, R1, R5) under the Market-style protocol of docs/specs/vehicle-aicity.md section 5 (R5: R-G for a gallery of
    G < 5 images)."""
    from reidkit.metrics import evaluate_rank

    max_rank = min(5, np.shape(distances)[1])  # a smaller gallery has no rank 5 (and evaluate_rank would warn)
    cmc, mAP, _ = evaluate_rank(distances, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank)
    return float(mAP), float(cmc[0]), float(cmc[max_rank - 1])


def format_stage_table(scores: Iterable[StageScore]) -> str:
    rows = list(scores)
    width = max(len(STAGE_LABELS[s.stage]) for s in rows)
    lines = [f"{'stage':<{width}}   mAP(%)   R1(%)   R5(%)   dmAP", "-" * (width + 38)]
    base = rows[0].mAP if rows else 0.0
    for s in rows:
        lines.append(f"{STAGE_LABELS[s.stage]:<{width}}   {100 * s.mAP:6.2f}  {100 * s.rank1:6.2f}  "
                     f"{100 * s.rank5:6.2f}  {100 * (s.mAP - base):+6.2f}")
    return "\n".join(lines)

"""Evaluation (docs/specs/top-db-net.md section 8): eval-mode features of query and gallery, distances, CMC / mAP /
mINP with and without k-reciprocal re-ranking.

    result = evaluate(model, query_loader, gallery_loader, device=device, rerank=True)
    result.metrics           # {"mAP": 0.86, "Rank-1": 0.95, "Rank-5": ..., "Rank-10", "Rank-20", "mINP"}
    result.reranked          # the same after re-ranking (None without)
    result.flat()            # {"mAP": .., ..., "rerank/mAP": ..} for histories and checkpoints

Values are fractions in [0, 1]; tables print them as percentages.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from reidkit.features.pipeline import Features, extract_features, sample_features

RANKS = (1, 5, 10, 20)


@dataclass
class EvalResult:
    metrics: dict[str, float]
    reranked: dict[str, float] | None = None
    cmc: np.ndarray | None = None
    cmc_reranked: np.ndarray | None = None
    distmat: np.ndarray | None = None  # the query-gallery distances the ranking used (re-ranked if asked)
    extra: dict[str, float] = field(default_factory=dict)  # other measures, e.g. attribute accuracy ("attr/...")
    # Several test targets: each one's result; this result then holds their mean (and no CMC or distances).
    targets: dict[str, "EvalResult"] = field(default_factory=dict)
    verification: Any = None  # metrics.verification.VerificationResult: ROC of same/different identity pairs

    def own_flat(self) -> dict[str, float]:
        out = dict(self.metrics)
        if self.reranked is not None:
            out.update({f"rerank/{k}": v for k, v in self.reranked.items()})
        if self.verification is not None:
            out.update(self.verification.metrics())
        out.update(self.extra)
        return out

    def flat(self) -> dict[str, float]:
        """{"mAP": .., "rerank/mAP": .., ...} and, with several targets, "<target>/mAP", ... of each one."""
        out = self.own_flat()
        for label, result in self.targets.items():
            out.update({f"{label}/{k}": v for k, v in result.flat().items()})
        return out

    def table_rows(self) -> dict[str, dict[str, float]]:
        """Rows of the metrics table; with several targets, each target's rows then the mean's."""
        rows = {"without re-ranking": self.metrics}
        if self.reranked is not None:
            rows["with re-ranking"] = self.reranked
        if not self.targets:
            return rows
        out = {f"{label}: {name}": row for label, result in self.targets.items()
               for name, row in result.table_rows().items()}
        return out | {f"mean of {len(self.targets)}: {name}": row for name, row in rows.items()}

    def record(self) -> dict[str, Any]:
        """What results.json keeps: {"metrics": ...}, and with several targets "metrics" is their mean and
        "targets" maps each target to its metrics."""
        if not self.targets:
            return {"metrics": self.flat()}
        return {"metrics": self.own_flat(), "targets": {label: r.flat() for label, r in self.targets.items()}}


def combine_results(results: Mapping[str, EvalResult]) -> EvalResult:
    """One result of several targets' results: each metric's mean over the targets that report it."""
    def mean(rows: list[Mapping[str, float]]) -> dict[str, float]:
        keys = [k for k in rows[0] if all(k in row for row in rows)]
        return {k: float(np.mean([row[k] for row in rows])) for k in keys}

    parts = list(results.values())
    reranked = [r.reranked for r in parts if r.reranked is not None]
    return EvalResult(mean([r.metrics for r in parts]),
                      mean(reranked) if len(reranked) == len(parts) else None,
                      extra=mean([r.extra for r in parts]), targets=dict(results))


def format_results(result: EvalResult, label: str) -> str:
    """The metrics table of `result` ("<label>") and its verification line; with several targets one table per
    target, then the mean."""
    if not result.targets:
        table = format_table(result.table_rows(), label=label)
        return table if result.verification is None else f"{table}\n{result.verification.describe()}"
    tables = [format_results(r, f"{label} / {target}") for target, r in result.targets.items()]
    mean = EvalResult(result.metrics, result.reranked)
    return "\n\n".join(tables + [format_table(mean.table_rows(), label=f"{label} / mean of {len(result.targets)}")])


def rank_metrics(cmc: np.ndarray, mAP: float, mINP: float) -> dict[str, float]:
    cmc = np.asarray(cmc, dtype=float)
    out = {"mAP": float(mAP)}
    out.update({f"Rank-{r}": float(cmc[r - 1]) for r in RANKS if r <= len(cmc)})
    out["mINP"] = float(mINP)
    return out


def _distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> np.ndarray:
    from reidkit.metrics import compute_distance_matrix

    dist = compute_distance_matrix(a, b, metric=metric)
    return dist.cpu().numpy() if isinstance(dist, torch.Tensor) else np.asarray(dist)


def _verification(qf: torch.Tensor, gf: torch.Tensor, ids: tuple[np.ndarray, ...]) -> Any:
    """The verification ROC, or None where the pairs allow none (camera-less data under the "self" protocol, or
    no identity seen by two cameras): ranking metrics do not need it."""
    from reidkit.metrics import verification_roc
    from reidkit.metrics._checks import MetricInputError

    try:
        return verification_roc(qf.numpy(), gf.numpy(), *ids)
    except MetricInputError as error:
        if "needs pairs" not in str(error):
            raise
        return None


def evaluate_features(
    query: Features,
    gallery: Features,
    *,
    metric: str = "sqeuclidean",
    normalize: bool = False,
    rerank: bool = False,
    max_rank: int = 50,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    protocol: str = "market",
) -> EvalResult:
    """CMC, mAP and mINP from query and gallery features, and after re-ranking when `rerank`. `protocol` names
    an entry of reidkit.metrics.rank.RANK_PROTOCOLS; the features' paths identify the images ("self"). The
    verification ROC (cosine similarity of the pairs, whatever `metric` and `normalize`) is in `.verification`."""
    from reidkit.metrics import evaluate_rank, re_ranking

    qf, gf = query.features, gallery.features
    if normalize:
        qf, gf = nn.functional.normalize(qf, dim=1), nn.functional.normalize(gf, dim=1)
    distmat = _distance(qf, gf, metric)
    ids = (query.pids, gallery.pids, query.camids, gallery.camids)
    rank_options = {"max_rank": max_rank, "protocol": protocol, "q_images": _paths(query),
                    "g_images": _paths(gallery)}
    cmc, mAP, mINP = evaluate_rank(distmat, *ids, **rank_options)
    result = EvalResult(rank_metrics(cmc, mAP, mINP), cmc=np.asarray(cmc), distmat=distmat,
                        verification=_verification(qf, gf, ids))
    if rerank:
        from reidkit.metrics.rerank import CollapsedDistancesError

        try:
            reranked = re_ranking(distmat, _distance(qf, qf, metric), _distance(gf, gf, metric),
                                  k1=k1, k2=k2, lambda_value=lambda_value)
        except CollapsedDistancesError as error:
            # A collapsed model (constant features) has nothing to re-rank; its plain metrics say so already,
            # and a training run must still end with its results and checkpoint.
            warnings.warn(f"re-ranking skipped: {error}", stacklevel=2)
            return result
        reranked = np.asarray(reranked)
        cmc_r, mAP_r, mINP_r = evaluate_rank(reranked, *ids, **rank_options)
        result.reranked = rank_metrics(cmc_r, mAP_r, mINP_r)
        result.cmc_reranked, result.distmat = np.asarray(cmc_r), reranked
    return result


def _paths(features: Features) -> list | None:
    """One image path per item, or None (pooled video features, loaders without paths)."""
    return list(features.paths) if len(features.paths) == len(features.pids) else None


def protocol_samples(query: Iterable[tuple], gallery: Iterable[tuple], protocol: str
                     ) -> tuple[list[tuple], list[tuple]]:
    """Query and gallery samples whose camid field holds the protocol's junk key (its camera, or for "self" its
    image): what the ranked-list drawings, which skip same-identity same-camid items, need to follow it."""
    from reidkit.metrics.rank import RANK_PROTOCOLS

    query, gallery = list(query), list(gallery)
    q_keys, g_keys = RANK_PROTOCOLS.get(protocol).junk_keys(
        np.asarray([s[2] for s in query]), np.asarray([s[2] for s in gallery]),
        [str(s[0]) for s in query], [str(s[0]) for s in gallery])
    return ([(s[0], s[1], int(k), *s[3:]) for s, k in zip(query, q_keys)],
            [(s[0], s[1], int(k), *s[3:]) for s, k in zip(gallery, g_keys)])


def evaluate(
    model: nn.Module,
    query_loader: Iterable[Mapping[str, Any]],
    gallery_loader: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str = "cpu",
    amp: str = "none",
    channels_last: bool = False,
    flip: bool = False,
    progress: bool = False,
    **options: Any,
) -> EvalResult:
    """Features of both loaders (per sample, see sample_features), then evaluate_features(**options)."""
    common = {"device": device, "amp": amp, "channels_last": channels_last, "flip": flip}
    query = extract_features(model, query_loader, desc="query" if progress else None, **common)
    gallery = extract_features(model, gallery_loader, desc="gallery" if progress else None, **common)
    return evaluate_features(sample_features(query, query_loader), sample_features(gallery, gallery_loader),
                             **options)


def format_table(rows: Mapping[str, Mapping[str, float]], *, label: str = "") -> str:
    """Plain-text table of metric rows in percent."""
    columns = list(dict.fromkeys(k for row in rows.values() for k in row))
    width = max([len(label)] + [len(r) for r in rows]) + 2
    head = label.ljust(width) + "".join(c.rjust(9) for c in columns)
    lines = [head, "-" * len(head)]
    for name, row in rows.items():
        lines.append(name.ljust(width) + "".join(
            (f"{100 * row[c]:.1f}" if c in row else "").rjust(9) for c in columns))
    return "\n".join(lines)

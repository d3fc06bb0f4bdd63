"""Evaluation (spec top-db-net.md section 8): eval-mode features of query and gallery, distances, CMC / mAP /
mINP with and without k-reciprocal re-ranking.

    result = evaluate(model, query_loader, gallery_loader, device=device, rerank=True)
    result.metrics           # {"mAP": 0.86, "Rank-1": 0.95, "Rank-5": ..., "Rank-10", "Rank-20", "mINP"}
    result.reranked          # the same after re-ranking (None without)
    result.flat()            # {"mAP": .., ..., "rerank/mAP": ..} for histories and checkpoints

Values are fractions in [0, 1]; tables print them as percentages.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from reidkit.errors import ConfigError

RANKS = (1, 5, 10, 20)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Features:
    features: torch.Tensor  # [N, D] float32, CPU
    pids: np.ndarray
    camids: np.ndarray
    paths: list = field(default_factory=list)


@dataclass
class EvalResult:
    metrics: dict[str, float]
    reranked: dict[str, float] | None = None
    cmc: np.ndarray | None = None
    cmc_reranked: np.ndarray | None = None
    distmat: np.ndarray | None = None  # the query-gallery distances the ranking used (re-ranked if asked)
    extra: dict[str, float] = field(default_factory=dict)  # other measures, e.g. attribute accuracy ("attr/...")
    verification: Any = None  # metrics.verification.VerificationResult: ROC of same/different identity pairs

    def flat(self) -> dict[str, float]:
        out = dict(self.metrics)
        if self.reranked is not None:
            out.update({f"rerank/{k}": v for k, v in self.reranked.items()})
        if self.verification is not None:
            out.update(self.verification.metrics())
        out.update(self.extra)
        return out

    def table_rows(self) -> dict[str, dict[str, float]]:
        rows = {"without re-ranking": self.metrics}
        if self.reranked is not None:
            rows["with re-ranking"] = self.reranked
        return rows


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


@torch.no_grad()
def extract_features(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str = "cpu",
    amp: str = "none",
    channels_last: bool = False,
    flip: bool = False,
    desc: str | None = None,
) -> Features:
    """Eval-mode features of every batch of `loader` ({"img", "pid", "camid", "path"} dicts), in order."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    feats, pids, camids, paths = [], [], [], []
    try:
        for batch in tqdm(loader, desc=desc, leave=False, disable=desc is None, dynamic_ncols=True):
            images = batch["img"].to(device, non_blocking=True)
            if channels_last and images.dim() == 4:  # video clips [B, T, 3, H, W]: the model's frames follow its layout
                images = images.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                out = model(images)
                if flip:
                    # The last dim is the width for images [B, 3, H, W] and clips [B, T, 3, H, W] alike.
                    out = (out + model(torch.flip(images, dims=[-1]))) / 2
            if not isinstance(out, torch.Tensor) or out.dim() != 2:
                raise ConfigError(f"the model's eval output must be a [B, D] feature tensor, got "
                                  f"{type(out).__name__ if not isinstance(out, torch.Tensor) else tuple(out.shape)}")
            feats.append(out.float().cpu())
            pids.extend(torch.as_tensor(batch["pid"]).tolist())
            camids.extend(torch.as_tensor(batch["camid"]).tolist())
            paths.extend(batch.get("path", []))
    finally:
        model.train(was_training)
    if not feats:
        raise ConfigError("no images to extract features from (empty loader)")
    return Features(torch.cat(feats), np.asarray(pids), np.asarray(camids), paths)


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
    """CMC, mAP and mINP from query and gallery features, and after re-ranking when `rerank`; the verification
    ROC (cosine similarity of the pairs, whatever `metric` and `normalize`) in `.verification`."""
    from reidkit.metrics import evaluate_rank, re_ranking, verification_roc

    qf, gf = query.features, gallery.features
    if normalize:
        qf, gf = nn.functional.normalize(qf, dim=1), nn.functional.normalize(gf, dim=1)
    distmat = _distance(qf, gf, metric)
    ids = (query.pids, gallery.pids, query.camids, gallery.camids)
    cmc, mAP, mINP = evaluate_rank(distmat, *ids, max_rank=max_rank, protocol=protocol)
    result = EvalResult(rank_metrics(cmc, mAP, mINP), cmc=np.asarray(cmc), distmat=distmat,
                        verification=verification_roc(qf.numpy(), gf.numpy(), *ids))
    if rerank:
        reranked = re_ranking(distmat, _distance(qf, qf, metric), _distance(gf, gf, metric),
                              k1=k1, k2=k2, lambda_value=lambda_value)
        reranked = np.asarray(reranked)
        cmc_r, mAP_r, mINP_r = evaluate_rank(reranked, *ids, max_rank=max_rank, protocol=protocol)
        result.reranked = rank_metrics(cmc_r, mAP_r, mINP_r)
        result.cmc_reranked, result.distmat = np.asarray(cmc_r), reranked
    return result


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


def sample_features(features: Features, loader: Any) -> Features:
    """The features of the samples ranked: a loader whose dataset splits each sample into several items (the
    test chunks of a video tracklet) pools the items' features back with its `pool_features`."""
    pool = getattr(getattr(loader, "dataset", None), "pool_features", None)
    return pool(features) if callable(pool) else features


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

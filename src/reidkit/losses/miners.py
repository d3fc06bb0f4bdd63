"""Batch-hard mining, kept apart from the losses (pytorch-metric-learning style): distances first, then the
hardest positive (farthest same identity) and hardest negative (closest other identity) of every anchor."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from reidkit.errors import ConfigError, RegistryError
from reidkit.registry import Registry

# Triplet distances by name (config key loss.metric): [N, D] features -> [N, N] distances.
METRICS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("triplet distance metric")


@METRICS.register("euclidean")
def euclidean(x: torch.Tensor) -> torch.Tensor:
    """As the reference computes it: sqrt of the expanded squared distance, clamped at 1e-12 so the gradient
    at 0 stays finite."""
    sq = x.pow(2).sum(1, keepdim=True)
    dist = torch.addmm(sq + sq.t(), x, x.t(), beta=1, alpha=-2)
    return dist.clamp(min=1e-12).sqrt()


@METRICS.register("cosine")
def cosine(x: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity."""
    unit = F.normalize(x, p=2, dim=1)
    return 1.0 - unit @ unit.t()


def _distance(metric: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return METRICS.get(metric)
    except RegistryError as error:
        raise ConfigError(f"loss.metric: {error}") from None


def pairwise_distance(x: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """[N, D] -> [N, N] under the triplet distance `metric` (METRICS)."""
    if x.dim() != 2:
        raise ValueError(f"pairwise_distance expects [N, D] features, got shape {tuple(x.shape)}")
    return _distance(metric)(x)


@dataclass(frozen=True)
class HardTriplets:
    """Per anchor: distance to and index of its hardest positive and hardest negative."""

    dist_ap: torch.Tensor
    dist_an: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor


def batch_hard(dist: torch.Tensor, labels: torch.Tensor) -> HardTriplets:
    """Hardest positive / negative of each anchor from a distance matrix [N, N] and labels [N]. The anchor
    counts as its own positive (distance ~0), as in the reference, so single-image identities are allowed."""
    n = dist.shape[0]
    if dist.shape != (n, n) or labels.shape != (n,):
        raise ValueError(
            f"batch_hard expects dist [N, N] and labels [N], got {tuple(dist.shape)} and {tuple(labels.shape)}"
        )
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    if bool(same.all()):
        raise ValueError(
            f"batch-hard mining needs at least two identities in the batch; all {n} samples have pid {labels[0].item()}"
        )
    dist_ap, positive = dist.masked_fill(~same, float("-inf")).max(1)
    dist_an, negative = dist.masked_fill(same, float("inf")).min(1)
    return HardTriplets(dist_ap, dist_an, positive, negative)


class BatchHardMiner:
    """miner(embeddings, labels) -> HardTriplets, under `metric` ("euclidean" or "cosine")."""

    def __init__(self, metric: str = "euclidean") -> None:
        _distance(metric)
        self.metric = metric

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> HardTriplets:
        if embeddings.dim() != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(
                f"expected embeddings [N, D] and labels [N], got {tuple(embeddings.shape)} and {tuple(labels.shape)}"
            )
        return batch_hard(pairwise_distance(embeddings, self.metric), labels)

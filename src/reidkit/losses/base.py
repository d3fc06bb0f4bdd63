"""The LOSSES registry and the options every loss factory reads.

A registered factory takes a LossOptions and returns an nn.Module with a `takes` attribute naming the
Stream field it consumes ("logits" or "features") and forward(inputs, pids) -> scalar tensor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from reidkit.registry import Registry

LOSSES: Registry[Callable[["LossOptions"], nn.Module]] = Registry("loss")


@dataclass(frozen=True)
class LossOptions:
    """margin: hard-margin triplet margin; soft_margin: use softplus(d_ap - d_an) instead; metric: triplet
    distance ("euclidean" or "cosine"); label_smooth: cross-entropy smoothing epsilon (0 = plain CE)."""

    margin: float = 0.3
    soft_margin: bool = False
    metric: str = "euclidean"
    label_smooth: float = 0.1

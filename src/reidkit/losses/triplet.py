"""Batch-hard triplet loss (Hermans et al. 2017): hard margin relu(d_ap - d_an + m) or soft margin
softplus(d_ap - d_an), averaged over anchors."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reidkit.errors import ConfigError
from reidkit.losses.base import LOSSES, LossOptions
from reidkit.losses.miners import BatchHardMiner


class TripletLoss(nn.Module):
    takes = "features"

    def __init__(self, margin: float = 0.3, soft_margin: bool = False, metric: str = "euclidean") -> None:
        super().__init__()
        if not soft_margin and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0):
            raise ConfigError(f"triplet margin must be a number >= 0, got {margin!r}")
        self.margin = float(margin)
        self.soft_margin = bool(soft_margin)
        self.miner = BatchHardMiner(metric)

    def forward(self, features: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        mined = self.miner(features, pids)
        gap = mined.dist_ap - mined.dist_an
        return F.softplus(gap).mean() if self.soft_margin else F.relu(gap + self.margin).mean()

    def extra_repr(self) -> str:
        kind = "soft_margin=True" if self.soft_margin else f"margin={self.margin}"
        return f"{kind}, metric={self.miner.metric!r}"


@LOSSES.register("triplet")
def _triplet(options: LossOptions) -> TripletLoss:
    return TripletLoss(options.margin, options.soft_margin, options.metric)

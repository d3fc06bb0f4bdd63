"""Bridge until the engine's Trainer passes batch targets to the criterion (configs/video/README.md, "engine
integration"): a loader wrapper hands each batch's attribute codes to the criterion just before the Trainer's
step uses that batch. Everything else is the engine's own Trainer."""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn


class AttributeFeed(nn.Module):
    """The criterion the Trainer calls as criterion(output, pids), given the current batch's attributes."""

    def __init__(self, criterion: nn.Module) -> None:
        super().__init__()
        self.criterion, self.attributes = criterion, None

    def forward(self, output: Any, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.criterion(output, pids, {k: v.to(pids.device) for k, v in self.attributes.items()})


class FeedingLoader:
    """The training loader, handing each batch's attributes to an AttributeFeed as the Trainer draws it."""

    def __init__(self, loader: Any, feed: AttributeFeed) -> None:
        self.loader, self.feed = loader, feed

    def __iter__(self) -> Iterator[dict]:
        for batch in self.loader:
            self.feed.attributes = batch["attributes"]
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # sampler, generator: what the Trainer looks up
        return getattr(self.loader, name)

"""Loss warm-up of the AICity vehicle recipe (docs/specs/vehicle-aicity.md section 1; config key loss.warmup_epochs):
the *loss*, not the LR, is scaled by w rising linearly from 0.1 to 1 over the first warm-up epochs, one increment
per iteration. engine.hooks.LossWarmupHook sets the factor before every step."""
from __future__ import annotations

import torch
from torch import nn


def loss_warmup_factor(step: int, warmup_steps: int, start: float = 0.1) -> float:
    """The reference's w at 0-based iteration `step`: min(1, start + (1 - start) * (step + 1) / warmup_steps)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, start + (1.0 - start) * (step + 1) / warmup_steps)


class ScaledCriterion(nn.Module):
    """criterion(output, pids) with the total loss multiplied by `factor` (the parts stay unscaled)."""

    def __init__(self, criterion: nn.Module) -> None:
        super().__init__()
        self.criterion = criterion
        self.factor = 1.0

    @property
    def batch_targets(self) -> tuple[str, ...]:
        """The wrapped criterion's batch entries (e.g. "attributes"), which the trainer passes on."""
        return tuple(getattr(self.criterion, "batch_targets", ()))

    def forward(self, output: object, pids: torch.Tensor, **targets: object) -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = self.criterion(output, pids, **targets)
        return loss * self.factor, parts

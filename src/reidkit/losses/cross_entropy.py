"""Cross-entropy with label smoothing (Szegedy et al. 2016): target (1 - eps) * one_hot + eps / K."""
from __future__ import annotations

import torch
from torch import nn

from reidkit.errors import ConfigError
from reidkit.losses.base import LOSSES, LossOptions


class CrossEntropyLabelSmooth(nn.Module):
    takes = "logits"

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0.0 <= epsilon < 1.0:
            raise ConfigError(f"label smoothing epsilon must be in [0, 1), got {epsilon!r}")
        self.epsilon = float(epsilon)

    def forward(self, logits: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or pids.shape != (logits.shape[0],):
            raise ValueError(f"expected logits [B, K] and pids [B], got {tuple(logits.shape)} and {tuple(pids.shape)}")
        k = logits.shape[1]
        low, high = int(pids.min()), int(pids.max())
        if low < 0 or high >= k:
            raise ValueError(
                f"pids must be training labels in 0..{k - 1} (the classifier has {k} outputs); got {low}..{high}"
            )
        log_probs = torch.log_softmax(logits, dim=1)
        targets = torch.zeros_like(log_probs).scatter_(1, pids.unsqueeze(1), 1.0)
        targets = (1 - self.epsilon) * targets + self.epsilon / k
        return (-targets * log_probs).mean(0).sum()

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"


@LOSSES.register("ce")
def _cross_entropy(options: LossOptions) -> CrossEntropyLabelSmooth:
    return CrossEntropyLabelSmooth(options.label_smooth)

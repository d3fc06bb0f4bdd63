"""The AICity recipe's optional balanced sampler (spec 1): every training image is drawn with probability
proportional to N / count(its identity), so each identity is drawn equally often on average."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from reidkit.data.base import Sample
from reidkit.errors import DatasetError


def balanced_weights(pids: Sequence[int]) -> torch.Tensor:
    """N / count(pid) per image."""
    pids = np.asarray(pids)
    if pids.size == 0:
        raise DatasetError("balanced sampler: the training set is empty")
    _, inverse, counts = np.unique(pids, return_inverse=True, return_counts=True)
    return torch.as_tensor(len(pids) / counts[inverse], dtype=torch.double)


def balanced_sampler(samples: Sequence[Sample], num_samples: int | None = None,
                     generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """Draws `num_samples` (default: one epoch, len(samples)) indices with replacement."""
    weights = balanced_weights([pid for _, pid, _ in samples])
    return WeightedRandomSampler(weights, num_samples or len(weights), replacement=True, generator=generator)

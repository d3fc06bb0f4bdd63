"""The AICity recipe's optional balanced sampler (docs/specs/vehicle-aicity.md section 1): every training image is drawn
with probability proportional to N / count(its identity), so each identity is drawn equally often on average."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from reidkit.data.base import Sample
from reidkit.data.samplers import SAMPLERS, SamplerEntry, TrainSampling
from reidkit.errors import ConfigError, DatasetError


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


def balanced_sampling(samples: Sequence[Sample], *, batch_size: int, num_instances: int, seed: int, rank: int,
                      world_size: int) -> TrainSampling:
    """data.sampler=balanced: batch_size / world_size images per batch, each process from its own generator
    (which the train loader seeds per epoch, like the augmentations)."""
    per_process = batch_size // world_size
    if per_process < 1 or batch_size % world_size:
        raise ConfigError(f"train.batch_size={batch_size}: expected a multiple of the {world_size} processes")
    draws = torch.Generator()
    sampler = balanced_sampler(samples, num_samples=max(per_process, len(samples) // world_size), generator=draws)
    return TrainSampling(sampler, per_process, reseed=draws)


SAMPLERS.register("balanced")(SamplerEntry(balanced_sampling))

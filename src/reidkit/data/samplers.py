"""Training samplers by name (registry SAMPLERS, config key data.sampler) and the identity sampler: P identities x
K images per batch (docs/specs/top-db-net.md section 7), with a share per process for distributed runs;
identity_once draws every identity once per epoch (the BDB and AITL video references). The balanced
sampler registers itself in data/vehicle/sampling.py."""
from __future__ import annotations

import functools

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from reidkit.errors import ConfigError
from reidkit.registry import Registry


class RandomIdentitySampler(Sampler[int]):
    """Indices into `samples` ((path, pid, camid) tuples) in batches of P = batch_size / K identities x K images.

    Per epoch: each identity's images are shuffled and cut into groups of K (an identity with fewer than K is
    padded by sampling with replacement, a remainder under K is dropped); batches take P distinct identities'
    next groups until fewer than P identities have groups left. `batch_size` is the global batch: with
    `world_size` processes every process draws the same batches (seed + epoch) and takes its own P / world_size
    identities of each, so the shares are disjoint and together form the global batch. Call `set_epoch` before
    each epoch. Load with DataLoader(batch_size=sampler.batch_size_per_process, drop_last=True).
    """

    def __init__(self, samples: Sequence[tuple], batch_size: int, num_instances: int, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if num_instances < 1 or batch_size % num_instances:
            raise ConfigError(f"batch_size {batch_size} must be a multiple of num_instances {num_instances} (K)")
        self.num_pids_per_batch = batch_size // num_instances
        if world_size < 1 or not 0 <= rank < world_size or self.num_pids_per_batch % world_size:
            raise ConfigError(f"the {self.num_pids_per_batch} identities per batch cannot be shared by "
                              f"{world_size} processes (rank {rank}): P must be a multiple of world_size")
        if world_size > 1 and self.num_pids_per_batch // world_size < 2:
            # Batch-hard mining runs on each process's share: one identity has no negatives.
            raise ConfigError(f"batch_size {batch_size} with num_instances {num_instances} gives each of the "
                              f"{world_size} processes {self.num_pids_per_batch // world_size} identity per "
                              f"batch; the triplet loss needs at least 2: raise batch_size to "
                              f"{2 * world_size * num_instances} or more")
        self.index_by_pid: dict[int, list[int]] = defaultdict(list)
        for index, sample in enumerate(samples):
            self.index_by_pid[sample[1]].append(index)
        if len(self.index_by_pid) < self.num_pids_per_batch:
            raise ConfigError(f"a batch needs {self.num_pids_per_batch} identities but the training set has "
                              f"{len(self.index_by_pid)}: lower batch_size or raise num_instances")
        self.pids = sorted(self.index_by_pid)
        self.num_instances, self.seed, self.rank, self.world_size = num_instances, seed, rank, world_size
        self.batch_size_per_process = batch_size // world_size
        self.epoch = 0
        self._cache: tuple[int, list[int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _groups(self, rng: np.random.Generator) -> dict[int, list[np.ndarray]]:
        groups = {}
        for pid in self.pids:
            indices = np.asarray(self.index_by_pid[pid])
            if len(indices) < self.num_instances:
                indices = rng.choice(indices, size=self.num_instances, replace=True)
            indices = rng.permutation(indices)
            usable = len(indices) - len(indices) % self.num_instances
            groups[pid] = list(indices[:usable].reshape(-1, self.num_instances))
        return groups

    def global_batches(self) -> list[list[np.ndarray]]:
        """This epoch's batches, each a list of P groups of K indices (identical on every process)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = self._groups(rng)
        available = list(self.pids)
        batches = []
        while len(available) >= self.num_pids_per_batch:
            chosen = rng.choice(len(available), size=self.num_pids_per_batch, replace=False)
            batches.append([groups[available[i]].pop() for i in chosen])
            available = [pid for pid in available if groups[pid]]
        return batches

    def _indices(self) -> list[int]:
        if self._cache is None or self._cache[0] != self.epoch:
            share = self.num_pids_per_batch // self.world_size
            mine = slice(self.rank * share, (self.rank + 1) * share)
            indices = [int(i) for batch in self.global_batches() for group in batch[mine] for i in group]
            self._cache = (self.epoch, indices)
        return self._cache[1]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


class IdentityOnceSampler(RandomIdentitySampler):
    """Every identity once per epoch with K instances, P = batch_size / K identities per batch (the AITL video
    reference's and BDB's RandomIdentitySampler, from open-reid).

    Per epoch: the identities in a random order, each with K of its samples drawn at random (without
    replacement when it has K or more, with replacement otherwise); consecutive runs of P identities form the
    batches and the last incomplete batch is dropped (the reference's DataLoader drop_last=True), so an epoch
    has floor(num_ids / P) = floor(num_ids * K / batch_size) batches (MARS: 625 x 4 / 32 = 78). Seeded by
    (seed, epoch) and shared across processes exactly as RandomIdentitySampler.
    """

    def global_batches(self) -> list[list[np.ndarray]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.pids))
        groups = []
        for position in order:
            indices = self.index_by_pid[self.pids[position]]
            groups.append(rng.choice(indices, size=self.num_instances, replace=len(indices) < self.num_instances))
        p = self.num_pids_per_batch
        return [groups[start:start + p] for start in range(0, len(groups) - p + 1, p)]


@dataclass(frozen=True)
class TrainSampling:
    """What a sampler entry gives the train loader: the sampler, the batch size per process and, for a sampler
    that draws from a torch generator, that generator (seeded per epoch by the loader)."""
    sampler: Sampler[int]
    batch_size: int
    reseed: Optional[torch.Generator] = None


@dataclass(frozen=True)
class SamplerEntry:
    # build(samples, batch_size=, num_instances=, seed=, rank=, world_size=) -> TrainSampling
    build: Callable[..., TrainSampling]
    # What is wrong with (train.batch_size, data.num_instances) for this sampler, or None; checked before any data.
    batch_problem: Callable[[int, int], Optional[str]] = lambda batch_size, num_instances: None
    # Batches of P identities x K samples (what the video criterion's batch-hard and AITL mining need).
    identity_batches: bool = False


SAMPLERS: Registry[SamplerEntry] = Registry("sampler")


def identity_batch_problem(batch_size: int, num_instances: int) -> str | None:
    if batch_size % num_instances:
        return f"train.batch_size={batch_size} must be a multiple of data.num_instances={num_instances}"
    if batch_size // num_instances < 2:
        return (f"train.batch_size={batch_size} with data.num_instances={num_instances} makes batches of one "
                "identity, where the triplet loss has no negative; use a batch_size of at least 2 x num_instances")
    return None


def identity_sampling(samples: Sequence[tuple], *, batch_size: int, num_instances: int, seed: int, rank: int,
                      world_size: int, sampler_class: type[RandomIdentitySampler] = RandomIdentitySampler
                      ) -> TrainSampling:
    sampler = sampler_class(samples, batch_size, num_instances, seed=seed, rank=rank, world_size=world_size)
    return TrainSampling(sampler, sampler.batch_size_per_process)


SAMPLERS.register("identity")(SamplerEntry(identity_sampling, identity_batch_problem, identity_batches=True))
SAMPLERS.register("identity_once")(SamplerEntry(functools.partial(identity_sampling, sampler_class=IdentityOnceSampler),
                                                identity_batch_problem, identity_batches=True))


class ShuffledSampler(Sampler[int]):
    """Every sample once per epoch in a random order drawn from (seed, epoch): the plain shuffled DataLoader of the
    AICity reference's released training command (docs/specs/vehicle-aicity.md section 1; its loader drops the
    last incomplete batch, as reidkit's train loader does). With `world_size` processes each takes every
    world_size-th index of the epoch's order (the first len - len % world_size), so the shares are disjoint and
    of equal length. Call `set_epoch` before each epoch."""

    def __init__(self, num_samples: int, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} of {world_size} processes: expected 0 <= rank < world_size")
        if num_samples < world_size:
            raise ConfigError(f"the training set has {num_samples} samples, fewer than the {world_size} processes")
        self.num_samples, self.seed, self.rank, self.world_size = num_samples, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        usable = self.num_samples - self.num_samples % self.world_size
        return iter(order[self.rank:usable:self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples // self.world_size


def shuffle_sampling(samples: Sequence[tuple], *, batch_size: int, num_instances: int, seed: int, rank: int,
                     world_size: int) -> TrainSampling:
    """data.sampler=shuffle: batches of batch_size / world_size samples per process (data.num_instances unused)."""
    if batch_size % world_size:
        raise ConfigError(f"train.batch_size={batch_size}: expected a multiple of the {world_size} processes")
    sampler = ShuffledSampler(len(samples), seed=seed, rank=rank, world_size=world_size)
    if len(sampler) < batch_size // world_size:
        raise ConfigError(f"train.batch_size={batch_size}: the {len(samples)} training samples make no full batch "
                          f"(per process: {len(sampler)} samples, batches of {batch_size // world_size}); lower it")
    return TrainSampling(sampler, batch_size // world_size)


SAMPLERS.register("shuffle")(SamplerEntry(shuffle_sampling))

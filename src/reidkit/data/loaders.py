"""Torch side: a Dataset over (path, pid, camid) samples and the train/test DataLoaders."""
from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from reidkit.data.base import Sample, read_image
from reidkit.data.samplers import SAMPLERS
from reidkit.data.transforms import build_transforms
from reidkit.errors import ConfigError, DatasetError, RegistryError


class ReidImageDataset(Dataset):
    """Yields {"img", "pid", "camid", "path"}; images are read (and checked) when loaded.

    An unreadable image raises DatasetError naming the file. With `skip_bad_images` it is replaced by the next
    readable image of the same identity (so P x K batches keep their shape), listed in `.skipped`, and the
    first one is announced in a warning (per process: each DataLoader worker keeps its own list).
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None, *,
                 skip_bad_images: bool = False) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.skip_bad_images = skip_bad_images
        self.skipped: set[str] = set()
        self._same_pid: dict[int, list[int]] = defaultdict(list)
        for index, (_, pid, _) in enumerate(self.samples):
            self._same_pid[pid].append(index)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[Image.Image, int]:
        """The image of sample `index` (or of its stand-in when skipping) and the index actually used."""
        path = self.samples[index][0]
        if not self.skip_bad_images:
            return read_image(path), index
        siblings = self._same_pid[self.samples[index][1]]
        start = siblings.index(index)
        for candidate in siblings[start:] + siblings[:start]:
            if self.samples[candidate][0] in self.skipped:
                continue
            try:
                return read_image(self.samples[candidate][0]), candidate
            except DatasetError as exc:
                if not self.skipped:
                    warnings.warn(f"skipping unreadable images, the first: {exc}", stacklevel=3)
                self.skipped.add(self.samples[candidate][0])
        raise DatasetError(f"no readable image of identity {self.samples[index][1]} (first: {path})")

    def set_progress(self, progress: float) -> None:
        """Training progress in epochs, for a transform that follows it (data.transforms.AnnealedAutoAugment)."""
        if hasattr(self.transform, "set_progress"):
            self.transform.set_progress(progress)

    def __getitem__(self, index: int) -> dict:
        image, used = self._load(index)
        path, pid, camid = self.samples[used]
        return {"img": self.transform(image) if self.transform else image, "pid": pid, "camid": camid, "path": path}


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The augmentation seed of the `position`-th sample of `epoch` in a loader seeded with `seed`."""
    words = np.random.SeedSequence([seed % 2**64, epoch, position + 1]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class SeededSampler(Sampler[tuple[int, int, float]]):
    """The indices of `sampler`, each with the seed of its augmentation, sample_seed(seed, epoch, position), and
    the training progress in epochs, epoch + position / len(sampler) (for annealed augmentations).

    What a batch holds then depends only on the seed, the epoch (`set_epoch`, forwarded to `sampler`) and
    the position, not on data.workers or on which worker loads it: a resumed run, whose fresh workers would
    otherwise start from other random states, draws exactly what an uninterrupted one drew. `reseed`, a
    generator that `sampler` draws from (the balanced sampler's), is seeded per epoch the same way.
    """

    def __init__(self, sampler: Sampler[int], seed: int, *, reseed: torch.Generator | None = None) -> None:
        self.sampler, self.seed, self.reseed = sampler, seed, reseed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, int, float]]:
        epoch, length = self.epoch, max(1, len(self))
        if self.reseed is not None:
            self.reseed.manual_seed(sample_seed(self.seed, epoch, -1))
        for position, index in enumerate(self.sampler):
            yield int(index), sample_seed(self.seed, epoch, position), epoch + position / length


class SeededSamples(Dataset):
    """dataset[index] drawn with torch's generator seeded by the seed SeededSampler pairs the index with
    (augmentations, clip starts: reidkit's and torchvision's draw from it); a dataset with `set_progress` is
    told the progress first (in the worker that loads the sample: no state is shared). In the main process
    (data.workers=0) the global state is put back afterwards, so loading leaves the model's random stream
    (dropout, drop blocks) alone, as it does with workers."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int, float]) -> Any:
        index, seed, progress = key
        if hasattr(self.dataset, "set_progress"):
            self.dataset.set_progress(progress)
        if get_worker_info() is not None:
            torch.manual_seed(seed)
            return self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def seeded_train_loader(dataset: Dataset, sampler: Sampler[int], *, seed: int, batch_size: int, workers: int,
                        reseed: torch.Generator | None = None, **options: Any) -> DataLoader:
    """Training DataLoader whose samples are augmented from sample_seed(seed, epoch, position)."""
    return DataLoader(SeededSamples(dataset), batch_size=batch_size,
                      sampler=SeededSampler(sampler, seed, reseed=reseed), drop_last=True, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(seed), **options)


def build_train_loader(samples: Sequence[Sample], *, height: int, width: int, batch_size: int, num_instances: int,
                       recipe: str = "top_db_net", workers: int = 0, seed: int = 0, rank: int = 0,
                       world_size: int = 1, skip_bad_images: bool = False, sampler: str = "identity",
                       autoaugment_epochs: int = 0) -> DataLoader:
    """Batches of the sampler `sampler` (data.SAMPLERS): identity gives P x K = batch_size / world_size images per
    process; shuffle takes every image once per epoch in a random order (the AICity vehicle recipes); balanced
    draws images with replacement with weight N / count(identity) (the AICity reference's option).
    Call `loader.sampler.set_epoch(e)` each epoch. Batches (draws and augmentations) depend only on seed, rank and
    epoch: not on `workers` (SeededSampler). autoaugment_epochs > 0: the AutoAugment view of the AICity reference,
    annealed over that many epochs (data.transforms.AnnealedAutoAugment)."""
    try:
        entry = SAMPLERS.get(sampler)
    except RegistryError as error:
        raise ConfigError(f"data.sampler={sampler!r}: {error}") from None
    plan = entry.build(samples, batch_size=batch_size, num_instances=num_instances, seed=seed, rank=rank,
                       world_size=world_size)
    transform = build_transforms(height, width, train=True, recipe=recipe, autoaugment_epochs=autoaugment_epochs)
    dataset = ReidImageDataset(samples, transform, skip_bad_images=skip_bad_images)
    # Ranks differ so that their augmentations do too.
    return seeded_train_loader(dataset, plan.sampler, seed=seed * 1000 + rank, batch_size=plan.batch_size,
                               workers=workers, reseed=plan.reseed)


def build_test_loader(samples: Sequence[Sample], *, height: int, width: int, batch_size: int, workers: int = 0,
                      recipe: str = "top_db_net") -> DataLoader:
    """All samples in order, test transform of `recipe`."""
    dataset = ReidImageDataset(samples, build_transforms(height, width, train=False, recipe=recipe))
    # Its own generator: every iterator draws a seed, which would otherwise come from the global RNG and make
    # a run resumed after an evaluation differ from one that never stopped.
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(0))

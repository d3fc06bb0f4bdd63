"""Clips of tracklets: random training clips, chunked test clips, clip-consistent augmentation, loaders.

Training (docs/specs/video-aitl-asta.md section 3): a clip is T consecutive frames starting uniformly in [0, max(0, N -
T - 1)]; a tracklet shorter than T is repeated cyclically. Test: the tracklet is cut into consecutive chunks of T (the
last padded by repeating its own frames); a tracklet's feature is the mean of its chunks' features. With
`max_chunks`, evenly spaced chunks are kept (deterministic, in the frame order; the reference takes a random
run of 200). "Consecutive" is in the tracklet's frame order (data.frame_order, FRAME_ORDERS): `temporal` (time
order) or `shuffled` (each tracklet's frames permuted once from the training seed, train and test: the
reference's load-time shuffle, so its clips are random frames of the tracklet).

Batches are dicts like the image loaders': {"img": [B, T, 3, H, W], "pid", "camid", "path" (first frame)},
plus "attributes" ({group: one-hot [B, d]}) for datasets with attributes, and "tracklet" (index) for chunks.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from reidkit.data.base import read_image
from reidkit.data.loaders import seeded_train_loader
from reidkit.data.samplers import SAMPLERS
from reidkit.data.transforms import build_transforms
from reidkit.data.video.attributes import AttributeSchema, Labels
from reidkit.data.video.base import Tracklet, VideoDataset
from reidkit.errors import ConfigError, RegistryError
from reidkit.registry import Registry

FrameTransform = Callable[[Image.Image], torch.Tensor]


def _check_seq_len(seq_len: int) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ConfigError(f"seq_len (frames per clip) must be a positive int, got {seq_len!r}")
    return seq_len


def cyclic_pad(indices: list[int], length: int) -> list[int]:
    """`indices` repeated cyclically up to `length` (the reference's padding of short clips)."""
    return [indices[i % len(indices)] for i in range(length)]


def train_clip_indices(num_frames: int, seq_len: int, generator: torch.Generator | None = None) -> list[int]:
    """T consecutive frame indices from a uniform start in [0, max(0, N - T - 1)], padded cyclically.
    Drawn from torch's generator (default: the global one, which DataLoader seeds per worker)."""
    start = int(torch.randint(0, max(0, num_frames - seq_len - 1) + 1, (), generator=generator))
    return cyclic_pad(list(range(start, min(start + seq_len, num_frames))), seq_len)


def chunk_indices(num_frames: int, seq_len: int, max_chunks: int | None = None) -> list[list[int]]:
    """Consecutive chunks of T frames covering the tracklet (last one padded cyclically); with `max_chunks`,
    that many evenly spaced chunks."""
    chunks = [cyclic_pad(list(range(s, min(s + seq_len, num_frames))), seq_len) for s in range(0, num_frames, seq_len)]
    if max_chunks is not None and len(chunks) > max_chunks:
        keep = np.linspace(0, len(chunks) - 1, max_chunks).round().astype(int)
        chunks = [chunks[i] for i in keep]
    return chunks


# name -> (tracklets, generator) -> the tracklets with their frames in that order (config key data.frame_order).
FRAME_ORDERS: Registry[Callable[[Sequence[Tracklet], np.random.Generator], list[Tracklet]]] = Registry("frame order")
# One generator stream per subset, so each subset's order depends only on the seed and its own tracklets.
SUBSET_STREAMS = {"train": 0, "query": 1, "gallery": 2}


@FRAME_ORDERS.register("temporal")
def temporal_order(tracklets: Sequence[Tracklet], generator: np.random.Generator) -> list[Tracklet]:
    """Frames as the dataset lists them (time order): clips and test chunks are consecutive frames."""
    return list(tracklets)


@FRAME_ORDERS.register("shuffled")
def shuffled_order(tracklets: Sequence[Tracklet], generator: np.random.Generator) -> list[Tracklet]:
    """Each tracklet's frames permuted once (the reference shuffles them at load time, train and test): its
    "consecutive" clips and chunks are then random frames of the tracklet."""
    return [(tuple(frames[i] for i in generator.permutation(len(frames))), pid, camid)
            for frames, pid, camid in tracklets]


def order_frames(tracklets: Sequence[Tracklet], frame_order: str, *, seed: int, subset: str) -> list[Tracklet]:
    """`tracklets` with their frames in `frame_order` (FRAME_ORDERS), drawn from a generator seeded by (seed,
    subset) alone: the same order in every process, every run of that seed and after a resume."""
    try:
        order = FRAME_ORDERS.get(frame_order)
    except RegistryError as error:
        raise ConfigError(f"data.frame_order={frame_order!r}: {error}") from None
    return order(tracklets, np.random.default_rng([seed, SUBSET_STREAMS[subset]]))


class ClipTransform:
    """Applies a frame transform to every frame of a clip and stacks them: [T, 3, H, W].

    By default the transform's random draws (flip, crop, erasing: torch's generator) are made once per clip and
    shared by its frames, so a clip stays a coherent video; `per_frame=True` draws them for every frame.
    (Replaying works for transforms drawing from torch's generator, as reidkit's and torchvision's do.)"""

    def __init__(self, transform: FrameTransform, per_frame: bool = False) -> None:
        self.transform, self.per_frame = transform, per_frame

    def __call__(self, frames: Sequence[Image.Image]) -> torch.Tensor:
        if self.per_frame:
            return torch.stack([self.transform(f) for f in frames])
        # A fresh seed from the global generator (so clips differ and the generator moves on), replayed per frame.
        seed = int(torch.randint(0, 2**62, ()))
        with torch.random.fork_rng(devices=[]):
            out = []
            for frame in frames:
                torch.manual_seed(seed)
                out.append(self.transform(frame))
        return torch.stack(out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r}, per_frame={self.per_frame})"


class _TrackletFrames(Dataset):
    """Shared part: tracklets, their attribute codes, and reading a clip of given frame indices."""

    def __init__(self, tracklets: Sequence[Tracklet], transform: ClipTransform | FrameTransform | None, seq_len: int,
                 attributes: Sequence[Labels | None] | None = None, schema: AttributeSchema | None = None) -> None:
        self.tracklets = list(tracklets)
        self.seq_len = _check_seq_len(seq_len)
        self.transform = transform if transform is None or isinstance(transform, ClipTransform) else ClipTransform(transform)
        self.schema = schema
        self.attributes = list(attributes) if attributes is not None else [None] * len(self.tracklets)
        if len(self.attributes) != len(self.tracklets):
            raise ValueError(f"{len(self.attributes)} attribute entries for {len(self.tracklets)} tracklets")

    def _item(self, tracklet_index: int, frame_indices: Sequence[int]) -> dict:
        frames, pid, camid = self.tracklets[tracklet_index]
        images = [read_image(frames[i]) for i in frame_indices]
        item = {"img": self.transform(images) if self.transform else images, "pid": pid, "camid": camid,
                "path": frames[0]}
        labels = self.attributes[tracklet_index]
        if self.schema is not None and labels is not None:
            item["attributes"] = self.schema.one_hot(labels)
        return item


class VideoClipDataset(_TrackletFrames):
    """One random clip of T frames per tracklet and epoch (training)."""

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> dict:
        return self._item(index, train_clip_indices(len(self.tracklets[index][0]), self.seq_len))


class VideoChunkDataset(_TrackletFrames):
    """Every test chunk of every tracklet, tracklet by tracklet; `pool` averages chunk features per tracklet."""

    def __init__(self, tracklets: Sequence[Tracklet], transform: ClipTransform | FrameTransform | None,
                 seq_len: int, max_chunks: int | None = None, **kwargs: object) -> None:
        super().__init__(tracklets, transform, seq_len, **kwargs)  # type: ignore[arg-type]
        if max_chunks is not None and (isinstance(max_chunks, bool) or not isinstance(max_chunks, int) or max_chunks < 1):
            raise ConfigError(f"max_chunks must be a positive int or null, got {max_chunks!r}")
        self.chunks = [(t, chunk) for t, (frames, _, _) in enumerate(self.tracklets)
                       for chunk in chunk_indices(len(frames), self.seq_len, max_chunks)]

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> dict:
        tracklet, frame_indices = self.chunks[index]
        item = self._item(tracklet, frame_indices)
        item["tracklet"] = tracklet
        return item

    def pool_features(self, chunks: Any) -> Any:
        """The evaluator's Features of every chunk (in dataset order) -> the same per tracklet: mean feature,
        the tracklet's pid and camid, its first frame as path."""
        first = [frames[0] for frames, _, _ in self.tracklets]
        return dataclasses.replace(chunks, features=self.pool(chunks.features),
                                   pids=np.array([pid for _, pid, _ in self.tracklets]),
                                   camids=np.array([camid for _, _, camid in self.tracklets]), paths=first)

    def pool(self, chunk_features: torch.Tensor) -> torch.Tensor:
        """[num chunks, D] in dataset order -> [num tracklets, D]: the mean over each tracklet's chunks."""
        if chunk_features.shape[0] != len(self.chunks):
            raise ValueError(f"got features of {chunk_features.shape[0]} chunks, the dataset has {len(self.chunks)}")
        index = torch.tensor([t for t, _ in self.chunks])
        sums = torch.zeros(len(self.tracklets), chunk_features.shape[1]).index_add_(0, index, chunk_features.float())
        counts = torch.bincount(index, minlength=len(self.tracklets)).clamp(min=1)
        return sums / counts.unsqueeze(1)


def identity_sampling_entry(sampler: str) -> Any:
    """The SAMPLERS entry `sampler`, which must give P identities x K tracklets per batch (batch-hard and AITL
    mining need K tracklets of each identity)."""
    try:
        entry = SAMPLERS.get(sampler)
    except RegistryError as error:
        raise ConfigError(f"data.sampler={sampler!r}: {error}") from None
    if not entry.identity_batches:
        fitting = [name for name in SAMPLERS.names() if SAMPLERS.get(name).identity_batches]
        raise ConfigError(f"data.sampler={sampler!r}: video datasets train with batches of P identities x K "
                          f"tracklets; set data.sampler to one of {', '.join(fitting)}")
    return entry


def build_video_train_loader(dataset: VideoDataset, *, height: int, width: int, batch_size: int, num_instances: int,
                             seq_len: int = 4, recipe: str = "asta", per_frame: bool = False, workers: int = 0,
                             seed: int = 0, rank: int = 0, world_size: int = 1, sampler: str = "identity",
                             frame_order: str = "temporal") -> DataLoader:
    """Training batches of P identities x K tracklets (`sampler`: identity walks every tracklet, identity_once
    draws every identity once per epoch), one random clip of `seq_len` frames per tracklet (its frames in
    `frame_order`), augmented by `recipe` once per clip (`per_frame`: per frame), with the tracklets' attribute
    codes when the dataset has attributes. Call `loader.sampler.set_epoch(e)`."""
    plan = identity_sampling_entry(sampler).build(dataset.train, batch_size=batch_size, num_instances=num_instances,
                                                  seed=seed, rank=rank, world_size=world_size)
    transform = ClipTransform(build_transforms(height, width, train=True, recipe=recipe), per_frame)
    tracklets = order_frames(dataset.train, frame_order, seed=seed, subset="train")
    clips = VideoClipDataset(tracklets, transform, seq_len, attributes=dataset.attributes["train"],
                             schema=dataset.attribute_schema)
    # Clip starts and augmentations seeded per (seed, rank, epoch, position): the same for any `workers`.
    return seeded_train_loader(clips, plan.sampler, seed=seed * 1000 + rank, batch_size=plan.batch_size,
                               workers=workers, reseed=plan.reseed)


def build_video_test_loader(dataset: VideoDataset, subset: str, *, height: int, width: int, batch_size: int,
                            seq_len: int = 4, max_chunks: int | None = None, recipe: str = "asta",
                            workers: int = 0, frame_order: str = "temporal", seed: int = 0) -> DataLoader:
    """Every test chunk of the `subset` ("query" or "gallery") tracklets in order, `batch_size` chunks per batch;
    chunks are consecutive frames of each tracklet in `frame_order` (shuffled: permuted from `seed`, the
    training seed, as the reference's load-time shuffle). `loader.dataset.pool_features(features)` turns the
    chunks' features into the tracklets' features."""
    if subset not in ("query", "gallery", "train"):
        raise ValueError(f"subset must be query, gallery or train, got {subset!r}")
    # An evaluation during training must not move the training's random stream (exact resumes): the
    # deterministic test transform is applied frame by frame (no per-clip seed draw) and the loader has its own
    # generator (iterating a DataLoader draws a base seed from it, else from the global one).
    transform = ClipTransform(build_transforms(height, width, train=False, recipe=recipe), per_frame=True)
    tracklets = order_frames(getattr(dataset, subset), frame_order, seed=seed, subset=subset)
    chunks = VideoChunkDataset(tracklets, transform, seq_len, max_chunks,
                               attributes=dataset.attributes[subset],
                               schema=dataset.attribute_schema)
    return DataLoader(chunks, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), collate_fn=collate_clips, generator=torch.Generator())


def collate_clips(items: list[dict]) -> dict:
    """Default collation, except that attribute codes are stacked only when every item has them (test sets
    may lack rows)."""
    if any("attributes" not in item for item in items):
        items = [{k: v for k, v in item.items() if k != "attributes"} for item in items]
    return torch.utils.data.default_collate(items)


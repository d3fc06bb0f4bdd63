"""VideoDataset: train/query/gallery lists of tracklets `(frame_paths, pid, camid)`, plus per-tracklet attributes.

It is an ImageDataset whose "path" is a tuple of frame paths in temporal order (the base class's relabelling,
checks and DATASETS registry apply unchanged). `attributes[subset][i]` is the label tuple of tracklet i of that
subset under `attribute_schema` (None where the CSV has no row: allowed for query and gallery only), or
`attribute_schema` is None for attribute-less datasets (iLIDS-VID, PRID2011). Readers check that every
training tracklet has its row (reidkit.data.video.attributes.lookup_attributes).
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

from reidkit.data.base import ImageDataset, read_image
from reidkit.data.video.attributes import AttributeSchema, Labels
from reidkit.errors import ConfigError, DatasetError

Tracklet = tuple[tuple[str, ...], int, int]  # (frame paths in temporal order, pid, camid)
SUBSETS = ("train", "query", "gallery")


def drop_unreadable_frames(subsets: dict[str, list[Tracklet]], skip: bool) -> dict[str, list[Tracklet]]:
    """Decode every frame once. A bad frame raises DatasetError naming it, or with `skip` is dropped from its
    tracklet (counted in one warning); tracklets keep their positions, even when left empty."""
    bad: list[str] = []
    kept: dict[str, list[Tracklet]] = {}
    for subset, tracklets in subsets.items():
        kept[subset] = []
        for frames, pid, camid in tracklets:
            good = []
            for frame in frames:
                try:
                    read_image(frame)
                    good.append(frame)
                except DatasetError as exc:
                    if not skip:
                        raise DatasetError(f"{subset} set: {exc}") from None
                    bad.append(frame)
            kept[subset].append((tuple(good), pid, camid))
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable frames, e.g. {bad[0]}", stacklevel=3)
    return kept


class VideoDataset(ImageDataset):
    """Tracklet lists plus attributes. Subclasses parse their layout and call this constructor with raw pids."""

    def __init__(self, train: Sequence[Tracklet], query: Sequence[Tracklet], gallery: Sequence[Tracklet], *,
                 name: str, root: str | os.PathLike, attribute_schema: AttributeSchema | None = None,
                 attributes: dict[str, list[Labels | None]] | None = None, verify_images: bool = False,
                 skip_bad_images: bool = False) -> None:
        subsets = {"train": list(train), "query": list(query), "gallery": list(gallery)}
        labels = {s: list(attributes[s]) if attributes else [None] * len(subsets[s]) for s in SUBSETS}
        for subset in SUBSETS:
            if len(labels[subset]) != len(subsets[subset]):
                raise ValueError(f"{name}: {len(labels[subset])} attribute entries for {len(subsets[subset])} "
                                 f"{subset} tracklets; expected one per tracklet")
        if verify_images or skip_bad_images:  # skipping needs to know which frames are bad
            subsets = drop_unreadable_frames(subsets, skip_bad_images)
        # Tracklets left without frames go, with their attribute rows (kept aligned with the tracklet lists).
        for subset in SUBSETS:
            keep = [i for i, (frames, _, _) in enumerate(subsets[subset]) if frames]
            subsets[subset] = [subsets[subset][i] for i in keep]
            labels[subset] = [labels[subset][i] for i in keep]
        super().__init__(subsets["train"], subsets["query"], subsets["gallery"], name=name, root=root)
        self.attribute_schema = attribute_schema
        self.attributes = labels

    sample_kind = "tracklet"

    @property
    def num_train_frames(self) -> int:
        return sum(len(frames) for frames, _, _ in self.train)

    def describe_training(self) -> str:
        return f"{len(self.train)} training tracklets ({self.num_train_frames} frames)"

    def train_loader(self, data: Any, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> Any:
        """Random clips of data.seq_len frames (frames in data.frame_order), P identities x K tracklets of
        data.sampler (with the tracklets' attribute codes)."""
        from reidkit.data.video.sampling import build_video_train_loader

        if data.autoaugment_epochs:  # the view follows one image's place in training, not a clip's frames
            raise ConfigError(f"data.autoaugment_epochs={data.autoaugment_epochs}: the AutoAugment view is for image "
                              f"datasets; {self.name} holds tracklets: set data.autoaugment_epochs=0")
        return build_video_train_loader(self, height=data.height, width=data.width, batch_size=batch_size,
                                        num_instances=data.num_instances, seq_len=data.seq_len,
                                        recipe=data.recipe, per_frame=data.per_frame, workers=data.workers,
                                        seed=seed, rank=rank, world_size=world_size, sampler=data.sampler,
                                        frame_order=data.frame_order)

    def test_loaders(self, data: Any, *, batch_size: int, seed: int = 0) -> tuple[Any, Any]:
        """Every test chunk of every query / gallery tracklet (frames in data.frame_order, shuffled from `seed`:
        the training seed); the loader's dataset pools the chunks' features back per tracklet (pool_features)."""
        from reidkit.data.video.sampling import build_video_test_loader

        options = {"height": data.height, "width": data.width, "batch_size": batch_size, "seq_len": data.seq_len,
                   "max_chunks": data.max_chunks, "recipe": data.recipe, "workers": data.workers,
                   "frame_order": data.frame_order, "seed": seed}
        return tuple(build_video_test_loader(self, subset, **options) for subset in ("query", "gallery"))

    def summary(self) -> str:
        """A table of ids, tracklets, frames and cameras per subset, and the attribute schema."""
        rule = "  " + "-" * 54
        rows = [f"=> {self.name} loaded from {self.root}", rule,
                f"  {'subset':<8} | {'# ids':>6} | {'# tracklets':>11} | {'# frames':>9} | {'# cameras':>9}", rule]
        for subset in SUBSETS:
            tracklets = getattr(self, subset)
            pids = len({pid for _, pid, _ in tracklets})
            cams = len({camid for _, _, camid in tracklets})
            frames = sum(len(f) for f, _, _ in tracklets)
            rows.append(f"  {subset:<8} | {pids:>6} | {len(tracklets):>11} | {frames:>9} | {cams:>9}")
        rows.append(rule)
        if self.attribute_schema is not None:
            dims = ", ".join(f"{g} {d}" for g, d in self.attribute_schema.group_dims.items())
            rows.append(f"  attributes: {len(self.attribute_schema)} ({dims} one-hot values)")
        return "\n".join(rows)

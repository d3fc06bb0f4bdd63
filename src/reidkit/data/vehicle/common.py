"""Pieces shared by the vehicle dataset readers: name lists, VeRi-style file names, track files, and the
dataset class that carries gallery tracks."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from reidkit.data.base import ImageDataset, Sample, read_text_file
from reidkit.errors import DatasetError

# VeRi and the synthetic vehicles: 0001_c001_00016450_0.jpg (vehicle id, 'c' + 1-based camera, frame, index).
VEHICLE_NAME = re.compile(r"^(?P<pid>\d+)_c(?P<cam>\d+)_")


def read_name_list(path: Path) -> list[str]:
    """One image name per line (blank lines ignored)."""
    if not path.is_file():
        raise DatasetError(f"name list {path} does not exist")
    return [line.strip() for line in read_text_file(path, "name list").splitlines() if line.strip()]


def listed_images(folder: Path, names: Sequence[str]) -> list[Path]:
    """folder/<name> for every listed name, in list order (the order gt_index / test_track / submissions
    refer to); every listed image must exist."""
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    paths = [folder / name for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} listed images are missing from {folder}, e.g. {missing[0].name}")
    return paths


def parse_vehicle_name(path: Path) -> tuple[int, int]:
    """(vehicle id, 0-based camera) from a VeRi-style name 0001_c001_...; the camera number is 1-based."""
    match = VEHICLE_NAME.match(path.name)
    if match is None or int(match["cam"]) < 1:
        raise DatasetError(f"image {path}: expected a name like 0001_c001_00016450_0.jpg "
                           "(vehicle id, 'c' + 1-based camera, ...)")
    return int(match["pid"]), int(match["cam"]) - 1


def read_track_file(path: str | os.PathLike, gallery_names: Sequence[str]) -> list[np.ndarray]:
    """Read a track file (one track per line, whitespace-separated gallery image names) into index arrays.

    AICity lines list only image names; VeRi lines start with a track key. A first token that is not a gallery
    name is therefore taken as the key and skipped; any other unknown name is an error. Indices follow
    `gallery_names` (file names or paths, in gallery order); a name repeated within a line counts once, a name
    in two tracks is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"track file {path} does not exist")
    index = {Path(name).name: i for i, name in enumerate(gallery_names)}
    owner: dict[int, int] = {}
    tracks: list[np.ndarray] = []
    for lineno, line in enumerate(read_text_file(path, "track file").splitlines(), start=1):
        tokens = line.split()
        if tokens and tokens[0] not in index:
            tokens = tokens[1:]  # track key (VeRi)
        if not tokens:
            continue
        unknown = [t for t in tokens if t not in index]
        if unknown:
            raise DatasetError(f"{path}:{lineno}: image {unknown[0]!r} is not in the gallery list "
                               f"({len(index)} names); expected gallery image names only")
        members = list(dict.fromkeys(index[t] for t in tokens))
        for i in members:
            if i in owner:
                name = Path(gallery_names[i]).name
                raise DatasetError(f"{path}:{lineno}: image {name!r} is already in the track of line {owner[i]}; "
                                   "a gallery image may be in one track only")
            owner[i] = lineno
        tracks.append(np.asarray(members, dtype=np.int64))
    return tracks


class VehicleDataset(ImageDataset):
    """ImageDataset plus `gallery_tracks`: index arrays into `.gallery`, one per track (empty: no tracks)."""

    def __init__(self, train: Sequence[Sample], query: Sequence[Sample], gallery: Sequence[Sample], *,
                 gallery_tracks: Sequence[np.ndarray] = (), **options: object) -> None:
        gallery = list(gallery)
        super().__init__(train, query, gallery, **options)
        # skip_bad_images may have dropped gallery images: re-index the tracks by path.
        position = {path: i for i, (path, _, _) in enumerate(self.gallery)}
        reindexed = ([position[gallery[i][0]] for i in track if gallery[i][0] in position] for track in gallery_tracks)
        self.gallery_tracks = [np.asarray(t, dtype=np.int64) for t in reindexed if t]

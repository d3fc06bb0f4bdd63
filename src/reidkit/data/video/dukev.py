"""DukeMTMC-VideoReID (Wu et al. 2018), attributes from duke_attributes.csv.

    <root>/{train,query,gallery}/<pid>/<tracklet>/0001_C6_F0099_X30823.jpg
    <root>/duke_attributes.csv      person_id, camera_id, tracklets_id, 19 attributes

Frame name: person, C + 1-based camera, F + frame number, ... Frames are ordered by frame number.
Gallery tracklets that are also query tracklets (same person and tracklet folder) are removed from the gallery;
the option gallery=reference gives the AITL reference's gallery instead (GALLERIES).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from reidkit.data.base import DATASETS, find_dataset_dir, list_images
from reidkit.data.video.attributes import (DUKEV_ATTRIBUTES, Labels, TrackletKey, lookup_attributes,
                                           read_attribute_csv, tracklet_key)
from reidkit.data.video.base import Tracklet, VideoDataset
from reidkit.errors import ConfigError, DatasetError, RegistryError
from reidkit.registry import Registry

FRAME_NAME = re.compile(r"^(\d+)_C(\d+)_F(\d+)")
ATTRIBUTE_FILE = "duke_attributes.csv"
SUBSETS = ("train", "query", "gallery")
LAYOUT = """  <root>/{train,query,gallery}/<pid>/<tracklet>/0001_C6_F0099_X30823.jpg
  <root>/duke_attributes.csv (with attributes; attributes=false reads the dataset without it)"""
# A tracklet, its attribute key and its (pid, tracklet folder name).
Entry = tuple[Tracklet, TrackletKey, tuple[int, str]]


def read_tracklet(folder: Path) -> tuple[Tracklet, TrackletKey]:
    """A tracklet folder's frames in frame order, its person and 0-based camera, and its attribute key."""
    frames = list_images(folder)
    if not frames:
        raise DatasetError(f"DukeMTMC-VideoReID: tracklet folder {folder} holds no images")
    parsed = []
    for frame in frames:
        match = FRAME_NAME.match(frame.name)
        if match is None or int(match[2]) < 1:
            raise DatasetError(f"DukeMTMC-VideoReID: {frame} does not follow 0001_C6_F0099_X30823.jpg "
                               "(person, C + camera from 1, F + frame number)")
        parsed.append((int(match[3]), int(match[1]), int(match[2]), str(frame)))
    people = {p for _, p, _, _ in parsed}
    cameras = {c for _, _, c, _ in parsed}
    if len(people) != 1 or len(cameras) != 1:
        raise DatasetError(f"DukeMTMC-VideoReID: tracklet folder {folder} mixes persons {sorted(people)} / cameras "
                           f"{sorted(cameras)}; expected one person under one camera")
    pid, camera = people.pop(), cameras.pop()
    paths = tuple(path for _, _, _, path in sorted(parsed))
    return (paths, pid, camera - 1), tracklet_key(pid, camera, folder.name)


def read_subset(folder: Path) -> list[Entry]:
    """(tracklet, attribute key, (pid, tracklet folder name)) of every tracklet folder, in sorted order."""
    found = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        for track in sorted(t for t in person.iterdir() if t.is_dir()):
            tracklet, key = read_tracklet(track)
            found.append((tracklet, key, (tracklet[1], track.name)))
    return found


# Dataset option `gallery`: name -> (query entries, gallery entries) -> the gallery evaluated against.
GALLERIES: Registry[Callable[[list[Entry], list[Entry]], list[Entry]]] = Registry("DukeMTMC-VideoReID gallery")


@GALLERIES.register("standard")
def standard_gallery(query: list[Entry], gallery: list[Entry]) -> list[Entry]:
    """The gallery folder less the query tracklets, matched on (pid, tracklet folder): folder names repeat
    across identities."""
    query_ids = {ident for _, _, ident in query}
    return [entry for entry in gallery if entry[2] not in query_ids]


@GALLERIES.register("reference")
def reference_gallery(query: list[Entry], gallery: list[Entry]) -> list[Entry]:
    """The AITL reference's gallery (its published DukeV figures): every gallery tracklet whose folder name is
    any query's folder name is removed, whatever its identity, and the query tracklets are appended."""
    query_folders = {folder for _, _, (_, folder) in query}
    return [entry for entry in gallery if entry[2][1] not in query_folders] + list(query)


class DukeMTMCVideoReID(VideoDataset):
    """Options: attributes (true: read duke_attributes.csv), min_seq_len (0), gallery (GALLERIES: standard, or
    reference: the AITL reference's gallery, on which its published DukeV figures were measured)."""

    display_name = "DukeMTMC-VideoReID"

    def __init__(self, root: str | os.PathLike, *, attributes: bool = True, min_seq_len: int = 0,
                 gallery: str = "standard", **options: object) -> None:
        try:
            gallery_rule = GALLERIES.get(gallery)
        except RegistryError as error:
            raise ConfigError(f"data.options.gallery={gallery!r}: {error}") from None
        required = SUBSETS + ((ATTRIBUTE_FILE,) if attributes else ())
        folder = find_dataset_dir(root, ("", "DukeMTMC-VideoReID", "dukemtmc-vidreid/DukeMTMC-VideoReID"), required,
                                  self.display_name, LAYOUT)
        table = read_attribute_csv(folder / ATTRIBUTE_FILE, DUKEV_ATTRIBUTES) if attributes else None
        found = {subset: read_subset(folder / subset) for subset in SUBSETS}
        found["gallery"] = gallery_rule(found["query"], found["gallery"])
        subsets: dict[str, list[Tracklet]] = {}
        labels: dict[str, list[Labels | None]] = {}
        for subset, entries in found.items():
            entries = [e for e in entries if len(e[0][0]) >= min_seq_len]
            subsets[subset] = [tracklet for tracklet, _, _ in entries]
            labels[subset] = lookup_attributes(table, [key for _, key, _ in entries], required=subset == "train",
                                               source=folder / ATTRIBUTE_FILE, dataset=self.display_name)
        super().__init__(subsets["train"], subsets["query"], subsets["gallery"], name=self.display_name,
                         root=folder, attribute_schema=DUKEV_ATTRIBUTES if attributes else None,
                         attributes=labels, **options)  # type: ignore[arg-type]


DATASETS.register("dukemtmcvidreid")(DukeMTMCVideoReID)

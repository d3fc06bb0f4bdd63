"""DukeMTMC-VideoReID (Wu et al. 2018), attributes from duke_attributes.csv.

    <root>/{train,query,gallery}/<pid>/<tracklet>/0001_C6_F0099_X30823.jpg
    <root>/duke_attributes.csv      person_id, camera_id, tracklets_id, 19 attributes

Frame name: person, C + 1-based camera, F + frame number, ... Frames are ordered by frame number.
Gallery tracklets that are also query tracklets (same person and tracklet folder) are removed from the gallery.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from reidkit.data.base import DATASETS, find_dataset_dir, list_images
from reidkit.data.video.attributes import (DUKEV_ATTRIBUTES, Labels, TrackletKey, lookup_attributes,
                                           read_attribute_csv, tracklet_key)
from reidkit.data.video.base import Tracklet, VideoDataset
from reidkit.errors import DatasetError

FRAME_NAME = re.compile(r"^(\d+)_C(\d+)_F(\d+)")
ATTRIBUTE_FILE = "duke_attributes.csv"
SUBSETS = ("train", "query", "gallery")
LAYOUT = """  <root>/{train,query,gallery}/<pid>/<tracklet>/0001_C6_F0099_X30823.jpg
  <root>/duke_attributes.csv (with attributes; attributes=false reads the dataset without it)"""


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


def read_subset(folder: Path) -> list[tuple[Tracklet, TrackletKey, tuple[int, str]]]:
    """(tracklet, attribute key, (pid, tracklet folder name)) of every tracklet folder, in sorted order."""
    found = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        for track in sorted(t for t in person.iterdir() if t.is_dir()):
            tracklet, key = read_tracklet(track)
            found.append((tracklet, key, (tracklet[1], track.name)))
    return found


class DukeMTMCVideoReID(VideoDataset):
    display_name = "DukeMTMC-VideoReID"

    def __init__(self, root: str | os.PathLike, *, attributes: bool = True, min_seq_len: int = 0,
                 **options: object) -> None:
        required = SUBSETS + ((ATTRIBUTE_FILE,) if attributes else ())
        folder = find_dataset_dir(root, ("", "DukeMTMC-VideoReID", "dukemtmc-vidreid/DukeMTMC-VideoReID"), required,
                                  self.display_name, LAYOUT)
        table = read_attribute_csv(folder / ATTRIBUTE_FILE, DUKEV_ATTRIBUTES) if attributes else None
        found = {subset: read_subset(folder / subset) for subset in SUBSETS}
        # Match on (pid, tracklet folder): folder names repeat across identities.
        query_ids = {ident for _, _, ident in found["query"]}
        found["gallery"] = [entry for entry in found["gallery"] if entry[2] not in query_ids]
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

"""VeRi-776 (docs/specs/vehicle-aicity.md section 4): image_train / image_query / image_test, name_*.txt,
test_track.txt.

Names are 0001_c001_00016450_0.jpg (vehicle id, camera c001..c020). The evaluation is the Market-style
protocol: gallery images of the query's vehicle under the query's camera are junk, which is what the
dataset's jk_index lists, so gt_index / jk_index are not read.
"""
from __future__ import annotations

import os
from pathlib import Path

from reidkit.data.base import DATASETS, Sample, find_dataset_dir, list_images
from reidkit.data.vehicle.common import (VehicleDataset, listed_images, parse_vehicle_name, read_name_list,
                                         read_track_file)

SUBSETS = {"train": ("image_train", "name_train.txt"), "query": ("image_query", "name_query.txt"),
           "gallery": ("image_test", "name_test.txt")}
LAYOUT = """  <root>/VeRi/  (or VeRi-776, VeRi776, or <root> itself)
      image_train/ image_query/ image_test/   e.g. 0001_c001_00016450_0.jpg
      [name_train.txt name_query.txt name_test.txt test_track.txt]"""


def read_subset(folder: Path, name_list: Path) -> list[Sample]:
    # The name lists fix the order (gt_index and test_track refer to it); without them, sorted file names.
    paths = listed_images(folder, read_name_list(name_list)) if name_list.is_file() else list_images(folder)
    return [(str(p), *parse_vehicle_name(p)) for p in paths]


def read_veri_layout(base: Path) -> tuple[dict[str, list[Sample]], list]:
    """The three subsets of a VeRi-layout folder and its gallery tracks (empty without test_track.txt)."""
    subsets = {name: read_subset(base / folder, base / listing) for name, (folder, listing) in SUBSETS.items()}
    track_file = base / "test_track.txt"
    gallery_names = [path for path, _, _ in subsets["gallery"]]
    tracks = read_track_file(track_file, gallery_names) if track_file.is_file() else []
    return subsets, tracks


@DATASETS.register("veri776")
class VeRi776(VehicleDataset):
    def __init__(self, root: str | os.PathLike, **options: object) -> None:
        base = find_dataset_dir(root, ("VeRi", "VeRi-776", "VeRi776", ""),
                                [folder for folder, _ in SUBSETS.values()], "VeRi-776", LAYOUT)
        subsets, tracks = read_veri_layout(base)
        super().__init__(subsets["train"], subsets["query"], subsets["gallery"], gallery_tracks=tracks,
                         name="VeRi-776", root=base, **options)

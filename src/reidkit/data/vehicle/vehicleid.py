"""VehicleID (docs/specs/vehicle-aicity.md section 4): image/<name>.jpg, train_test_split/{train_list,
test_list_800|1600|2400}.txt, lines "<image name> <vehicle id>".

There are no cameras. For each test list, one random image per vehicle goes to the gallery and the rest are
queries; the published protocol averages 10 such draws (`draw` 0..9, seeded: a draw is the same split on
every machine). The gallery is given camid 1 and everything else camid 0, so the same-camera junk rule of
the Market-style evaluation never removes a true match.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from reidkit.data.base import DATASETS, Sample, find_dataset_dir, read_text_file
from reidkit.data.vehicle.common import VehicleDataset, listed_images
from reidkit.errors import DatasetError

TEST_SIZES = (800, 1600, 2400)
NUM_DRAWS = 10
QUERY_CAM, GALLERY_CAM = 0, 1
LAYOUT = """  <root>/VehicleID_V1.0/  (or VehicleID, or <root> itself)
      image/0000001.jpg ...
      train_test_split/train_list.txt test_list_800.txt test_list_1600.txt test_list_2400.txt
  each list line: <image name> <vehicle id>"""


def read_split_list(path: Path, image_dir: Path) -> list[Sample]:
    if not path.is_file():
        raise DatasetError(f"VehicleID split list {path} does not exist")
    names, pids = [], []
    for lineno, line in enumerate(read_text_file(path, "VehicleID split list").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{path}:{lineno}: expected '<image name> <vehicle id>', got {line.strip()!r}")
        names.append(parts[0] if Path(parts[0]).suffix else f"{parts[0]}.jpg")
        pids.append(int(parts[1]))
    return [(str(p), pid, QUERY_CAM) for p, pid in zip(listed_images(image_dir, names), pids)]


def draw_gallery(test: list[Sample], test_size: int, draw: int, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """(query, gallery) of one draw: per vehicle one random image to the gallery, the others to the queries."""
    if not 0 <= draw < NUM_DRAWS:
        raise DatasetError(f"VehicleID: draw={draw}, expected 0..{NUM_DRAWS - 1}")
    rng = np.random.default_rng([seed, test_size, draw])
    by_pid: dict[int, list[int]] = {}
    for i, (_, pid, _) in enumerate(test):
        by_pid.setdefault(pid, []).append(i)
    chosen = {members[rng.integers(len(members))] for _, members in sorted(by_pid.items())}
    query = [s for i, s in enumerate(test) if i not in chosen]
    gallery = [(path, pid, GALLERY_CAM) for i, (path, pid, _) in enumerate(test) if i in chosen]
    return query, gallery


@DATASETS.register("vehicleid")
class VehicleID(VehicleDataset):
    """Options: test_size (800 | 1600 | 2400), draw (0..9), seed (0)."""

    def __init__(self, root: str | os.PathLike, *, test_size: int = 800, draw: int = 0, seed: int = 0,
                 **options: object) -> None:
        if test_size not in TEST_SIZES:
            raise DatasetError(f"VehicleID: test_size={test_size}, expected one of {TEST_SIZES}")
        base = find_dataset_dir(root, ("VehicleID_V1.0", "VehicleID", ""), ("image", "train_test_split"),
                                "VehicleID", LAYOUT)
        split_dir, image_dir = base / "train_test_split", base / "image"
        train = read_split_list(split_dir / "train_list.txt", image_dir)
        test = read_split_list(split_dir / f"test_list_{test_size}.txt", image_dir)
        query, gallery = draw_gallery(test, test_size, draw, seed)
        self.test_size, self.draw = test_size, draw
        super().__init__(train, query, gallery, name=f"VehicleID-{test_size}", root=base, **options)

"""VIPeR: one image per person in cam_a/ and cam_b/, paired by the number the file name starts with.

No official split: `split_id` (0-9) picks one of 10 random halves drawn from `split_seed`. Training holds both
views of half the persons; the other half is queried from cam_a against cam_b.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from reidkit.data.base import DATASETS, ImageDataset, Sample, find_dataset_dir, list_images
from reidkit.errors import DatasetError

NUM_SPLITS = 10
NAME = re.compile(r"^(\d+)_")  # 000_45.bmp: person 000, viewing angle 45
LAYOUT = """  <root>/VIPeR/  (or viper/VIPeR, or <root> itself)
      cam_a/000_45.bmp ...
      cam_b/000_90.bmp ...   (one image per person and camera, same leading number)"""


def read_camera(folder: Path) -> dict[int, str]:
    """person number -> image path for one camera folder."""
    people: dict[int, str] = {}
    for path in list_images(folder):
        match = NAME.match(path.name)
        if match is None:
            raise DatasetError(f"{path}: expected a file name like 000_45.bmp (person number, '_', angle)")
        if int(match[1]) in people:
            raise DatasetError(f"{folder} holds two images of person {match[1]}: {people[int(match[1])]} and {path}")
        people[int(match[1])] = str(path)
    return people


def split_persons(persons: list[int], split_id: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, test) persons of split `split_id`: the first half of that split's random permutation trains."""
    if not 0 <= split_id < NUM_SPLITS:
        raise DatasetError(f"VIPeR split_id must be in 0..{NUM_SPLITS - 1}, got {split_id}")
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(persons)) for _ in range(NUM_SPLITS)]
    order = orders[split_id]
    half = len(persons) // 2
    return sorted(persons[i] for i in order[:half]), sorted(persons[i] for i in order[half:])


@DATASETS.register("viper")
class VIPeR(ImageDataset):
    def __init__(self, root: str | os.PathLike, *, split_id: int = 0, split_seed: int = 0,
                 **options: object) -> None:
        folder = find_dataset_dir(root, ("VIPeR", "viper/VIPeR", ""), ("cam_a", "cam_b"), "VIPeR", LAYOUT)
        cam_a, cam_b = read_camera(folder / "cam_a"), read_camera(folder / "cam_b")
        unpaired = sorted(set(cam_a) ^ set(cam_b))
        if unpaired:
            raise DatasetError(f"VIPeR: persons {unpaired[:5]} have an image in only one of {folder}/cam_a and "
                               f"cam_b; every person needs one image in each")
        train_ids, test_ids = split_persons(sorted(cam_a), split_id, split_seed)
        train: list[Sample] = [(cam[pid], pid, camid) for pid in train_ids for camid, cam in enumerate((cam_a, cam_b))]
        query = [(cam_a[pid], pid, 0) for pid in test_ids]
        gallery = [(cam_b[pid], pid, 1) for pid in test_ids]
        super().__init__(train, query, gallery, name=f"VIPeR-split{split_id}", root=folder, **options)

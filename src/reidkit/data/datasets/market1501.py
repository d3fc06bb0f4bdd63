"""Market-1501 and DukeMTMC-reID: one folder per subset, identity and camera in each file name."""
from __future__ import annotations

import os
import re
from pathlib import Path

from reidkit.data.base import DATASETS, ImageDataset, Sample, find_dataset_dir, list_images
from reidkit.data.synthetic import generate_market_dataset
from reidkit.errors import DatasetError

# 0002_c1s1_000451_03.jpg (Market), 0001_c2_f0046182.jpg (Duke): person id, 'c' + 1-based camera, ...
NAME = re.compile(r"^(-?\d+)_c(\d+)")
JUNK_PID = -1  # boxes the dataset authors marked as bad detections: never used
DISTRACTOR_PID = 0  # people outside the identity set: gallery noise only

SUBSETS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def parse_folder(folder: Path, *, keep_distractors: bool, example: str) -> list[Sample]:
    """(path, pid, 0-based camid) of every image in `folder`, junk dropped, distractors kept only if asked."""
    samples = []
    for path in list_images(folder):
        match = NAME.match(path.name)
        if match is None or int(match[2]) < 1:
            raise DatasetError(f"{path}: cannot read person and camera from the file name; expected a name like "
                               f"{example} (person id, 'c' + camera number from 1, ...)")
        pid, cam = int(match[1]), int(match[2])
        if pid == JUNK_PID or (pid == DISTRACTOR_PID and not keep_distractors):
            continue
        samples.append((str(path), pid, cam - 1))
    return samples


class BoundingBoxDataset(ImageDataset):
    """The shared reader: subclasses name their folder and give an example file name for error messages."""

    display_name = ""
    folder = ""
    torchreid_parent = ""  # torchreid keeps the dataset one level deeper: <root>/<parent>/<folder>
    example = ""

    def __init__(self, root: str | os.PathLike, **options: object) -> None:
        layout = "\n".join(f"  <root>/{self.folder}/{sub}/  e.g. {self.example}" for sub in SUBSETS.values())
        candidates = (self.folder, f"{self.torchreid_parent}/{self.folder}", "")
        folder = find_dataset_dir(root, candidates, tuple(SUBSETS.values()), self.display_name, layout)
        # Distractors only make sense as gallery noise: they would be one fake class in training.
        subsets = {name: parse_folder(folder / sub, keep_distractors=name == "gallery", example=self.example)
                   for name, sub in SUBSETS.items()}
        super().__init__(subsets["train"], subsets["query"], subsets["gallery"], name=self.display_name,
                         root=folder, **options)


@DATASETS.register("market1501")
class Market1501(BoundingBoxDataset):
    display_name = "Market-1501"
    folder = "Market-1501-v15.09.15"
    torchreid_parent = "market1501"
    example = "0002_c1s1_000451_03.jpg"


@DATASETS.register("dukemtmcreid")
class DukeMTMCreID(BoundingBoxDataset):
    display_name = "DukeMTMC-reID"
    folder = "DukeMTMC-reID"
    torchreid_parent = "dukemtmc-reid"
    example = "0001_c2_f0046182.jpg"


@DATASETS.register("synthetic")
class SyntheticMarket1501(Market1501):
    """Drawn people (reidkit.data.synthetic), generated under root on first use, read as Market-1501."""

    display_name = "synthetic Market-1501"
    option_targets = (generate_market_dataset,)

    def __init__(self, root: str | os.PathLike, *, verify_images: bool = False, skip_bad_images: bool = False,
                 **generator_options: object) -> None:
        folder = generate_market_dataset(root, **generator_options)  # type: ignore[arg-type]
        super().__init__(folder.parent, verify_images=verify_images, skip_bad_images=skip_bad_images)

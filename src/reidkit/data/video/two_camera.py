"""iLIDS-VID and PRID2011: two cameras, one sequence per person and camera, ten train/test splits, no attributes.

Per split, training uses both cameras of the training persons; query = camera 1 (A) and gallery = camera 2 (B)
of the test persons.

    iLIDS-VID:  <root>/i-LIDS-VID/sequences/cam{1,2}/person001/cam1_person001_00317.png
                <root>/train-test people splits/train_test_splits_ilidsvid.mat
                    'ls_set': splits x persons, 1-based indices into the sorted cam1 person folders;
                    the first half of each row is the test set (Wang et al. 2014)
    PRID2011:   <root>/prid_2011/multi_shot/cam_{a,b}/person_0001/0001.png
                <root>/splits_prid2011.json: [{"train": [folder, ...], "test": [folder, ...]}, ...]
                    (the split file of Video-Person-ReID / torchreid)
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

from reidkit.data.base import DATASETS, find_dataset_dir, list_images
from reidkit.data.video.base import Tracklet, VideoDataset
from reidkit.data.video.mars import load_mat_array
from reidkit.errors import ConfigError, DatasetError

PERSON_NUMBER = re.compile(r"(\d+)")


def person_id(folder_name: str) -> int:
    """The number in a person folder name (person001 -> 1, person_0001 -> 1)."""
    match = PERSON_NUMBER.search(folder_name)
    if match is None:
        raise DatasetError(f"person folder {folder_name!r} has no number in its name; expected e.g. person001")
    return int(match[1])


def sequences(cameras: Sequence[Path], persons: Sequence[str], camids: Sequence[int]) -> list[Tracklet]:
    """One tracklet per (person, camera): the person folder's frames in name (= temporal) order."""
    tracklets = []
    for person in persons:
        for camera, camid in zip(cameras, camids):
            frames = list_images(camera / person)
            if not frames:
                raise DatasetError(f"sequence folder {camera / person} holds no images")
            tracklets.append((tuple(str(f) for f in frames), person_id(person), camid))
    return tracklets


def check_split_id(split_id: int, num_splits: int, source: Path) -> None:
    if isinstance(split_id, bool) or not isinstance(split_id, int) or not 0 <= split_id < num_splits:
        raise ConfigError(f"split_id must be an int in 0..{num_splits - 1} ({source} holds {num_splits} splits), "
                          f"got {split_id!r}")


class TwoCameraVideoDataset(VideoDataset):
    """Shared reader: subclasses find their camera folders and return (train persons, test persons)."""

    display_name = ""

    def _build(self, root: Path, cameras: tuple[Path, Path], train: list[str], test: list[str],
               options: dict[str, object]) -> None:
        for person in train + test:
            for camera in cameras:
                if not (camera / person).is_dir():
                    raise DatasetError(f"{self.display_name}: the split names person folder {person!r}, but "
                                       f"{camera / person} does not exist")
        super().__init__(sequences(cameras, train, (0, 1)), sequences(cameras[:1], test, (0,)),
                         sequences(cameras[1:], test, (1,)), name=self.display_name, root=root,
                         **options)  # type: ignore[arg-type]


class ILIDSVID(TwoCameraVideoDataset):
    display_name = "iLIDS-VID"
    split_file = Path("train-test people splits") / "train_test_splits_ilidsvid.mat"
    layout = """  <root>/i-LIDS-VID/sequences/cam1/person001/*.png, <root>/i-LIDS-VID/sequences/cam2/...
  <root>/train-test people splits/train_test_splits_ilidsvid.mat"""

    def __init__(self, root: str | os.PathLike, *, split_id: int = 0, **options: object) -> None:
        folder = find_dataset_dir(root, ("", "ilids-vid", "iLIDS-VID"), ("i-LIDS-VID/sequences", str(self.split_file)),
                                  self.display_name, self.layout)
        cameras = (folder / "i-LIDS-VID" / "sequences" / "cam1", folder / "i-LIDS-VID" / "sequences" / "cam2")
        persons = sorted(p.name for p in cameras[0].iterdir() if p.is_dir()) if cameras[0].is_dir() else []
        splits = load_mat_array(folder / self.split_file, "ls_set")
        if splits.ndim != 2 or splits.shape[1] != len(persons) or len(persons) % 2:
            raise DatasetError(f"{folder / self.split_file}: 'ls_set' has shape {splits.shape}; expected splits x "
                               f"{len(persons)} (the number of person folders in {cameras[0]}, an even number)")
        check_split_id(split_id, splits.shape[0], folder / self.split_file)
        row = splits[split_id]
        if sorted(row.tolist()) != list(range(1, len(persons) + 1)):
            raise DatasetError(f"{folder / self.split_file}: split {split_id} is not a permutation of 1..{len(persons)}")
        half = len(persons) // 2
        test = sorted(persons[i - 1] for i in row[:half])
        train = sorted(persons[i - 1] for i in row[half:])
        self._build(folder, cameras, train, test, options)


class PRID2011(TwoCameraVideoDataset):
    display_name = "PRID2011"
    split_file = "splits_prid2011.json"
    layout = """  <root>/prid_2011/multi_shot/cam_a/person_0001/*.png, <root>/prid_2011/multi_shot/cam_b/...
  <root>/splits_prid2011.json (Video-Person-ReID's split file: [{"train": [...], "test": [...]}, ...])"""

    def __init__(self, root: str | os.PathLike, *, split_id: int = 0, **options: object) -> None:
        folder = find_dataset_dir(root, ("", "prid2011", "PRID2011"), ("prid_2011/multi_shot", self.split_file),
                                  self.display_name, self.layout)
        shots = folder / "prid_2011" / "multi_shot"
        splits = self._read_splits(folder / self.split_file)
        check_split_id(split_id, len(splits), folder / self.split_file)
        split = splits[split_id]
        self._build(folder, (shots / "cam_a", shots / "cam_b"), sorted(split["train"]), sorted(split["test"]),
                    options)

    @staticmethod
    def _read_splits(path: Path) -> list[dict[str, list[str]]]:
        try:
            splits = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path} cannot be read as JSON ({exc})") from None
        valid = isinstance(splits, list) and splits and all(
            isinstance(s, dict) and all(isinstance(s.get(k), list) and s[k] for k in ("train", "test")) for s in splits)
        if not valid:
            raise DatasetError(f"{path}: expected a non-empty list of {{\"train\": [person folders], "
                               "\"test\": [person folders]}} objects")
        return splits


DATASETS.register("ilidsvid")(ILIDSVID)
DATASETS.register("prid2011")(PRID2011)
